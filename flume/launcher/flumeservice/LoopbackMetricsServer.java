package flumeservice;

import com.google.gson.Gson;
import java.io.IOException;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.apache.flume.Context;
import org.apache.flume.instrumentation.MonitorService;
import org.apache.flume.instrumentation.util.JMXPollUtil;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.AbstractHandler;

/**
 * Flume's JSON metrics (GET /metrics, the counters of every source, channel and sink, as Flume's
 * own HTTPMetricsServer serves them), listening on 127.0.0.1 only. Flume's server binds every
 * interface and has no option to bind one: on a host other hosts can reach, any of them could
 * read (and load) every agent's metrics port. Selected with
 * -Dflume.monitoring.type=flumeservice.LoopbackMetricsServer -Dflume.monitoring.port=PORT.
 */
public final class LoopbackMetricsServer implements MonitorService {
  private Server server;
  private int port = 41414;

  @Override
  public void configure(Context context) {
    port = context.getInteger("port", port);
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
    server.setHandler(new AbstractHandler() {
      @Override
      public void handle(String target, Request base, HttpServletRequest req, HttpServletResponse res) throws IOException {
        base.setHandled(true);
        if (!"GET".equalsIgnoreCase(req.getMethod()) || !"/metrics".equals(target)) {
          res.sendError(HttpServletResponse.SC_NOT_FOUND);
          return;
        }
        res.setContentType("application/json;charset=utf-8");
        res.setStatus(HttpServletResponse.SC_OK);
        res.getWriter().write(gson.toJson(StartBacklog.into(JMXPollUtil.getAllMBeans())));
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
