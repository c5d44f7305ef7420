import { describe, expect, it } from 'vitest';
import { decodeResponse, encodeCall, XmlRpcFault } from '../../src/supervisor/xmlrpc-codec.js';

const response = (value: string) => `<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value>${value}</value>\n</param>\n</params>\n</methodResponse>\n`;

describe('the XML-RPC codec', () => {
  it('encodes a call with every value type, escaping text', () => {
    expect(encodeCall('supervisor.startProcess', ['flume-shop-<orders>&', true, 3, 1.5, null, ['a'], { k: 'v' }])).toBe(
      '<?xml version="1.0"?><methodCall><methodName>supervisor.startProcess</methodName><params>' +
        '<param><value><string>flume-shop-&lt;orders&gt;&amp;</string></value></param>' +
        '<param><value><boolean>1</boolean></value></param>' +
        '<param><value><int>3</int></value></param>' +
        '<param><value><double>1.5</double></value></param>' +
        '<param><value><nil/></value></param>' +
        '<param><value><array><data><value><string>a</string></value></data></array></value></param>' +
        '<param><value><struct><member><name>k</name><value><string>v</string></value></member></struct></value></param>' +
        '</params></methodCall>',
    );
  });

  it("decodes supervisord's answers: structs in arrays, ints, booleans, untyped strings, entities", () => {
    const xml = response(
      '<array><data><value><struct>' +
        '<member>\n<name>name</name>\n<value><string>flume-a&amp;b</string></value>\n</member>' +
        '<member><name>pid</name><value><int>4711</int></value></member>' +
        '<member><name>exitstatus</name><value><i4>-1</i4></value></member>' +
        '<member><name>ok</name><value><boolean>0</boolean></value></member>' +
        '<member><name>bare</name><value>untyped</value></member>' +
        '</struct></value></data></array>',
    );
    expect(decodeResponse(xml)).toEqual([{ name: 'flume-a&b', pid: 4711, exitstatus: -1, ok: false, bare: 'untyped' }]);
  });

  it('throws a fault as XmlRpcFault with its code and string', () => {
    const xml =
      "<?xml version='1.0'?><methodResponse><fault><value><struct>" +
      '<member><name>faultCode</name><value><int>10</int></value></member>' +
      '<member><name>faultString</name><value><string>BAD_NAME: flume-x</string></value></member>' +
      '</struct></value></fault></methodResponse>';
    expect(() => decodeResponse(xml)).toThrow(XmlRpcFault);
    try {
      decodeResponse(xml);
    } catch (e) {
      expect(e).toMatchObject({ faultCode: 10, faultString: 'BAD_NAME: flume-x' });
    }
  });

  it('refuses what is not a methodResponse', () => {
    expect(() => decodeResponse('<html>502 Bad Gateway</html>')).toThrow(/not an XML-RPC methodResponse/);
    expect(() => decodeResponse('<methodResponse><params></params></methodResponse>')).toThrow(/no value/);
  });
});
