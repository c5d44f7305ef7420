package flumeservice;

import java.io.File;
import java.util.ArrayList;
import java.util.List;
import org.apache.flume.Channel;
import org.apache.flume.node.Application;
import org.apache.flume.node.FileConfigurationSource;
import org.apache.flume.node.MaterializedConfiguration;
import org.apache.flume.node.UriConfigurationProvider;
import org.apache.flume.util.SSLUtil;

/**
 * Runs one Flume agent as `org.apache.flume.node.Application -n AGENT -f FILE --no-reload-conf`
 * does, with one difference: its channels are started before the configuration is handed over.
 *
 * Flume's Application starts each channel on its supervisor's thread and then looks every 500 ms
 * whether it has started, so no agent accepted events sooner than 500 ms after reading its
 * configuration, however fast its channel opened. Started here, the channels are found started at
 * the first look and the sinks and the source start at once. Everything else is Flume's own
 * Application: the supervisor (which finds the channel started and restarts it should it fail),
 * the metrics server, and the shutdown hook that stops the source, the sink, then the channel
 * (checkpointing it). Each channel's backlog at start is kept for the metrics (StartBacklog). Unlike Application.main, a configuration that cannot be read ends the JVM
 * (exit 1) instead of leaving it running with nothing in it.
 *
 * Usage: flumeservice.Agent -n AGENT -f FILE. Built into flume/lib by scripts/setup.sh.
 */
public final class Agent {
  private Agent() {}

  public static void main(String[] args) {
    String name = null;
    String file = null;
    for (int i = 0; i + 1 < args.length; i++) {
      if (args[i].equals("-n")) name = args[i + 1];
      if (args[i].equals("-f")) file = args[i + 1];
    }
    if (name == null || file == null) {
      System.err.println("usage: flumeservice.Agent -n AGENT -f FILE");
      System.exit(2);
    }
    try {
      SSLUtil.initGlobalSSLParameters();
      UriConfigurationProvider provider =
          new UriConfigurationProvider(name, List.of(new FileConfigurationSource(new File(file).toURI())), null, null, 0);
      MaterializedConfiguration conf = provider.getConfiguration();
      for (Channel channel : conf.getChannels().values()) {
        channel.start();
      }
      // Before any source or sink runs: what each channel replayed is all it holds.
      StartBacklog.record();
      Application application = new Application(new ArrayList<>());
      application.handleConfigurationEvent(conf);
      application.start();
      Runtime.getRuntime().addShutdownHook(new Thread(application::stop, "agent-shutdown-hook"));
    } catch (RuntimeException e) {
      System.err.println("flumeservice.Agent: a fatal error occurred while starting the agent");
      e.printStackTrace();
      System.exit(1);
    }
  }
}
