package flumeservice;

import java.lang.management.ManagementFactory;
import java.util.HashMap;
import java.util.Map;
import javax.management.Attribute;
import javax.management.JMException;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanServer;
import javax.management.MalformedObjectNameException;
import javax.management.ObjectName;

/**
 * Flume's counters as its HTTP metrics server serves them (JMXPollUtil.getAllMBeans: for each of
 * Flume's MBeans, "<Type>.<name>" -> each attribute's value as a string), read from Flume's MBeans
 * alone. JMXPollUtil asks the platform server for every MBean (queryMBeans(null, null)), which
 * builds each one's MBeanInfo, the JVM's DiagnosticCommand among them, only to drop all but
 * Flume's: about 1.6 ms of the agent's CPU per read. Every reader pays it (the API's fleet
 * refresh, the gateway's traces and sink acknowledgements); a name pattern finds Flume's MBeans
 * without touching the others.
 */
final class FlumeCounters {
  private static final MBeanServer SERVER = ManagementFactory.getPlatformMBeanServer();
  private static final ObjectName[] FLUME = {pattern("org.apache.flume:*"), pattern("org.apache.flume.*:*")};

  private FlumeCounters() {}

  private static ObjectName pattern(String text) {
    try {
      return new ObjectName(text);
    } catch (MalformedObjectNameException e) {
      throw new IllegalStateException(e);
    }
  }

  static Map<String, Map<String, String>> all() {
    Map<String, Map<String, String>> out = new HashMap<>();
    for (ObjectName pattern : FLUME) {
      for (ObjectName name : SERVER.queryNames(pattern, null)) {
        try {
          MBeanAttributeInfo[] infos = SERVER.getMBeanInfo(name).getAttributes();
          String[] names = new String[infos.length];
          for (int i = 0; i < infos.length; i++) names[i] = infos[i].getName();
          String text = name.toString();
          String key = text.substring(text.indexOf('=') + 1);
          Map<String, String> values = new HashMap<>();
          for (Attribute a : SERVER.getAttributes(name, names).asList()) {
            if ("type".equalsIgnoreCase(a.getName())) key = a.getValue() + "." + key;
            values.put(a.getName(), String.valueOf(a.getValue()));
          }
          out.put(key, values);
        } catch (JMException e) {
          // A component unregistered meanwhile (a reconfiguration): left out of this read.
        }
      }
    }
    return out;
  }
}
