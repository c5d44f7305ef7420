/**
 * The small part of XML-RPC that supervisord speaks: encode a call, decode a response or fault.
 * Values: string, int, boolean, double, array, struct, nil.
 */
export type XmlRpcValue = string | number | boolean | null | XmlRpcValue[] | { [k: string]: XmlRpcValue };

export class XmlRpcFault extends Error {
  constructor(
    readonly faultCode: number,
    readonly faultString: string,
  ) {
    super(`${faultCode} ${faultString}`);
  }
}

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function encodeValue(v: XmlRpcValue): string {
  if (v === null) return '<nil/>';
  if (typeof v === 'string') return `<string>${escapeXml(v)}</string>`;
  if (typeof v === 'boolean') return `<boolean>${v ? 1 : 0}</boolean>`;
  if (typeof v === 'number') return Number.isInteger(v) ? `<int>${v}</int>` : `<double>${v}</double>`;
  if (Array.isArray(v)) return `<array><data>${v.map((x) => `<value>${encodeValue(x)}</value>`).join('')}</data></array>`;
  const members = Object.entries(v)
    .map(([k, x]) => `<member><name>${escapeXml(k)}</name><value>${encodeValue(x)}</value></member>`)
    .join('');
  return `<struct>${members}</struct>`;
}

export function encodeCall(method: string, params: XmlRpcValue[]): string {
  const ps = params.map((p) => `<param><value>${encodeValue(p)}</value></param>`).join('');
  return `<?xml version="1.0"?><methodCall><methodName>${escapeXml(method)}</methodName><params>${ps}</params></methodCall>`;
}

interface Node {
  tag: string;
  children: Node[];
  text: string;
}

const unescapeXml = (s: string) =>
  s.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_, e: string) => {
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'amp') return '&';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });

function parseTree(xml: string): Node {
  const root: Node = { tag: '#root', children: [], text: '' };
  const stack = [root];
  const re = /<\?[^>]*\?>|<!--[\s\S]*?-->|<(\/?)([A-Za-z_][\w.-]*)[^>]*?(\/?)>|([^<]+)/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    const top = stack[stack.length - 1]!;
    if (m[4] !== undefined) {
      top.text += unescapeXml(m[4]);
    } else if (m[2] !== undefined) {
      if (m[1] === '/') {
        stack.pop();
      } else {
        const node: Node = { tag: m[2], children: [], text: '' };
        top.children.push(node);
        if (m[3] !== '/') stack.push(node);
      }
    }
  }
  return root;
}

function decodeValue(value: Node): XmlRpcValue {
  const typed = value.children[0];
  if (!typed) return value.text; // <value>text</value> is a string
  switch (typed.tag) {
    case 'string':
      return typed.text;
    case 'int':
    case 'i4':
    case 'i8':
      return parseInt(typed.text, 10);
    case 'double':
      return parseFloat(typed.text);
    case 'boolean':
      return typed.text.trim() === '1';
    case 'nil':
      return null;
    case 'array':
      return (typed.children[0]?.children ?? []).map(decodeValue);
    case 'struct': {
      const out: Record<string, XmlRpcValue> = {};
      for (const member of typed.children) {
        const name = member.children.find((c) => c.tag === 'name');
        const v = member.children.find((c) => c.tag === 'value');
        if (name && v) out[name.text] = decodeValue(v);
      }
      return out;
    }
    default:
      return typed.text;
  }
}

/** Decodes a methodResponse; throws XmlRpcFault for a fault response. */
export function decodeResponse(xml: string): XmlRpcValue {
  const resp = parseTree(xml).children.find((c) => c.tag === 'methodResponse');
  if (!resp) throw new Error('not an XML-RPC methodResponse');
  const fault = resp.children.find((c) => c.tag === 'fault');
  if (fault) {
    const f = decodeValue(fault.children[0]!) as Record<string, XmlRpcValue>;
    throw new XmlRpcFault(Number(f.faultCode), String(f.faultString));
  }
  const value = resp.children[0]?.children[0]?.children[0];
  if (!value) throw new Error('XML-RPC response has no value');
  return decodeValue(value);
}
