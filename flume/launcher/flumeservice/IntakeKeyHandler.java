package flumeservice;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.List;
import javax.servlet.http.HttpServletRequest;
import org.apache.flume.Context;
import org.apache.flume.Event;
import org.apache.flume.FlumeException;
import org.apache.flume.source.http.HTTPBadRequestException;
import org.apache.flume.source.http.JSONHandler;

/**
 * Flume's JSONHandler behind a key: the source takes a request's events only when it carries
 * the header X-Flume-Intake-Key with the agent's key (keyFile, the service user's 0600
 * services/<program>/control.key), compared in constant time. The gateway sends it (the table's
 * route holds it); any other local process that finds the port is answered 400 and nothing of
 * its request reaches the channel, so no one gets past the gateway's tokens, quotas and event
 * contracts by posting to 127.0.0.1:<port>. A key file that cannot be read fails the source's
 * configuration: the source never starts open. Selected with
 * a1.sources.r1.handler = flumeservice.IntakeKeyHandler and a1.sources.r1.handler.keyFile = FILE.
 */
public final class IntakeKeyHandler extends JSONHandler {
  static final String HEADER = "X-Flume-Intake-Key";
  private byte[] key;

  @Override
  public void configure(Context context) {
    String file = context.getString("keyFile");
    if (file == null || file.isEmpty()) throw new FlumeException("IntakeKeyHandler needs handler.keyFile");
    try {
      key = Files.readString(Paths.get(file), StandardCharsets.UTF_8).trim().getBytes(StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new FlumeException("IntakeKeyHandler cannot read its key file " + file, e);
    }
    if (key.length < 32) throw new FlumeException("IntakeKeyHandler: the key in " + file + " is shorter than 32 characters");
    super.configure(context);
  }

  @Override
  public List<Event> getEvents(HttpServletRequest request) throws Exception {
    String given = request.getHeader(HEADER);
    if (given == null || !MessageDigest.isEqual(key, given.getBytes(StandardCharsets.UTF_8))) {
      throw new HTTPBadRequestException("intake key missing or wrong: send events through the gateway");
    }
    return super.getEvents(request);
  }
}
