package flumeservice;

import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.apache.flume.Context;
import org.apache.flume.instrumentation.MonitorService;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.AbstractHandler;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.config.Configurator;
import org.apache.logging.log4j.core.config.LoggerConfig;

/**
 * Flume's JSON metrics (GET /metrics, the counters of every source, channel and sink, as Flume's
 * own HTTPMetricsServer serves them), listening on 127.0.0.1 only. Flume's server binds every
 * interface and has no option to bind one: on a host other hosts can reach, any of them could
 * read (and load) every agent's metrics port. Selected with
 * -Dflume.monitoring.type=flumeservice.LoopbackMetricsServer -Dflume.monitoring.port=PORT.
 *
 * With -Dflume.monitoring.controlDir=DIR (the agent's services/ directory) it also serves the
 * agent's log levels, as Kafka Connect's admin/loggers does: GET /loggers (every configured
 * logger and its level) and PUT /loggers?name=LOGGER&level=LEVEL, in memory (a restart forgets
 * them). Both need the header X-Flume-Control-Key with DIR/control.key, a file only the service's
 * user can read: any local user can reach 127.0.0.1, none other may turn a logger to DEBUG. The
 * levels in DIR/loggers.json (saved ones) are set when the server starts.
 */
public final class LoopbackMetricsServer implements MonitorService {
  private Server server;
  private int port = 41414;
  private String controlDir;
  private byte[] key;

  private static final Pattern LOGGER_NAME = Pattern.compile("^(root|[A-Za-z_$][A-Za-z0-9_$]*(\\.[A-Za-z_$][A-Za-z0-9_$]*)*)$");

  @Override
  public void configure(Context context) {
    port = context.getInteger("port", port);
    controlDir = context.getString("controlDir");
  }

  private static LoggerContext logging() {
    return (LoggerContext) org.apache.logging.log4j.LogManager.getContext(false);
  }

  /** Every logger the configuration names (the root as "root") and its level. */
  static Map<String, String> levels() {
    Map<String, String> out = new TreeMap<>();
    for (LoggerConfig c : logging().getConfiguration().getLoggers().values()) {
      out.put(c.getName().isEmpty() ? "root" : c.getName(), c.getLevel() == null ? null : c.getLevel().name());
    }
    return out;
  }

  static void set(String name, Level level) {
    if ("root".equals(name)) Configurator.setRootLevel(level);
    else Configurator.setLevel(name, level);
  }

  /** The saved levels (DIR/loggers.json: {"logger": "LEVEL"}); a missing file is none, a bad entry is skipped and said. */
  private void applySaved(Gson gson) {
    Path file = Paths.get(controlDir, "loggers.json");
    try {
      Map<String, String> saved = gson.fromJson(Files.readString(file, StandardCharsets.UTF_8), new TypeToken<Map<String, String>>() {}.getType());
      if (saved == null) return;
      for (Map.Entry<String, String> e : saved.entrySet()) {
        Level level = Level.getLevel(String.valueOf(e.getValue()).toUpperCase(java.util.Locale.ROOT));
        if (!LOGGER_NAME.matcher(e.getKey()).matches() || level == null) {
          System.err.println("flumeservice: skipped the saved level " + e.getKey() + "=" + e.getValue());
          continue;
        }
        set(e.getKey(), level);
      }
    } catch (NoSuchFileException e) {
      // nothing saved
    } catch (IOException | RuntimeException e) {
      System.err.println("flumeservice: could not read " + file + ": " + e);
    }
  }

  private boolean authorized(HttpServletRequest req) {
    String given = req.getHeader("X-Flume-Control-Key");
    return key != null && given != null && MessageDigest.isEqual(key, given.getBytes(StandardCharsets.UTF_8));
  }

  private static void json(HttpServletResponse res, int status, String body) throws IOException {
    res.setContentType("application/json;charset=utf-8");
    res.setStatus(status);
    res.getWriter().write(body);
    res.flushBuffer();
  }

  @Override
  public void start() {
    server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(port);
    connector.setReuseAddress(true);
    server.addConnector(connector);
    Gson gson = new Gson();
    if (controlDir != null) {
      try {
        key = Files.readString(Paths.get(controlDir, "control.key"), StandardCharsets.UTF_8).trim().getBytes(StandardCharsets.UTF_8);
        if (key.length < 32) key = null;
      } catch (IOException e) {
        key = null; // no key: no /loggers (nobody could be told apart)
      }
      applySaved(gson);
    }
    server.setHandler(new AbstractHandler() {
      @Override
      public void handle(String target, Request base, HttpServletRequest req, HttpServletResponse res) throws IOException {
        base.setHandled(true);
        if ("/loggers".equals(target) && key != null) {
          if (!authorized(req)) {
            json(res, HttpServletResponse.SC_UNAUTHORIZED, "{\"error\":\"control key missing or wrong\"}");
            return;
          }
          if ("PUT".equalsIgnoreCase(req.getMethod())) {
            String name = req.getParameter("name");
            Level level = Level.getLevel(String.valueOf(req.getParameter("level")));
            if (name == null || !LOGGER_NAME.matcher(name).matches() || name.length() > 200 || level == null) {
              json(res, HttpServletResponse.SC_BAD_REQUEST, "{\"error\":\"name and level (OFF FATAL ERROR WARN INFO DEBUG TRACE ALL) required\"}");
              return;
            }
            set(name, level);
          } else if (!"GET".equalsIgnoreCase(req.getMethod())) {
            json(res, HttpServletResponse.SC_METHOD_NOT_ALLOWED, "{\"error\":\"GET or PUT\"}");
            return;
          }
          json(res, HttpServletResponse.SC_OK, gson.toJson(levels()));
          return;
        }
        if (!"GET".equalsIgnoreCase(req.getMethod()) || !"/metrics".equals(target)) {
          res.sendError(HttpServletResponse.SC_NOT_FOUND);
          return;
        }
        res.setContentType("application/json;charset=utf-8");
        res.setStatus(HttpServletResponse.SC_OK);
        res.getWriter().write(gson.toJson(StartBacklog.into(FlumeCounters.all())));
        res.flushBuffer();
      }
    });
    try {
      server.start();
    } catch (Exception e) {
      throw new IllegalStateException("the metrics server could not listen on 127.0.0.1:" + port, e);
    }
  }

  @Override
  public void stop() {
    try {
      if (server != null) server.stop();
    } catch (Exception e) {
      // stopping: nothing to do about it
    }
  }
}
