// IP addresses and CIDR ranges. Every address is kept as 16 bytes, IPv4 as IPv4-mapped IPv6
// (::ffff:a.b.c.d), so "10.0.0.0/8" also matches a socket's "::ffff:10.1.2.3".

function ipv4Into(text: string, out: Uint8Array, at: i32): bool {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2e;
    if (c == 0x2e /* . */) {
      if (digits == 0 || part > 3) return false;
      out[at + part++] = <u8>value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      // Leading zeros are refused: some parsers read them as octal.
      if (digits > 0 && value == 0) return false;
      value = value * 10 + (c - 0x30);
      if (value > 255) return false;
      digits++;
    } else return false;
  }
  return part == 4;
}

function hexGroup(text: string): i32 {
  if (text.length == 0 || text.length > 4) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i) | 0x20;
    let digit: i32;
    if (c >= 0x30 && c <= 0x39) digit = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) digit = c - 0x61 + 10;
    else return -1;
    value = (value << 4) | digit;
  }
  return value;
}

/** Parses the groups of one side of "::" into out[at..]; the number of bytes, or -1. */
function ipv6Groups(text: string, out: Uint8Array, at: i32, room: i32): i32 {
  if (text.length == 0) return 0;
  const groups = text.split(":");
  let n = 0;
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i];
    if (i == groups.length - 1 && group.indexOf(".") >= 0) {
      if (n + 4 > room || !ipv4Into(group, out, at + n)) return -1;
      n += 4;
      continue;
    }
    const value = hexGroup(group);
    if (value < 0 || n + 2 > room) return -1;
    out[at + n] = <u8>(value >> 8);
    out[at + n + 1] = <u8>value;
    n += 2;
  }
  return n;
}

/** An IPv4 or IPv6 address as 16 bytes, or null. A zone ("%eth0") and brackets are ignored. */
export function parseIp(input: string): Uint8Array | null {
  let text = input.trim();
  if (text.startsWith("[") && text.endsWith("]")) text = text.substring(1, text.length - 1);
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.substring(0, zone);
  const out = new Uint8Array(16);
  if (text.indexOf(":") < 0) {
    out[10] = 0xff;
    out[11] = 0xff;
    return ipv4Into(text, out, 12) ? out : null;
  }
  const gap = text.indexOf("::");
  if (gap < 0) return ipv6Groups(text, out, 0, 16) == 16 ? out : null;
  if (text.indexOf("::", gap + 1) >= 0) return null;
  const head = ipv6Groups(text.substring(0, gap), out, 0, 16);
  if (head < 0) return null;
  const tail = new Uint8Array(16);
  const tailLength = ipv6Groups(text.substring(gap + 2), tail, 0, 16);
  // "::" stands for at least one group of zeros.
  if (tailLength < 0 || head + tailLength > 14) return null;
  for (let i = 0; i < tailLength; i++) out[16 - tailLength + i] = tail[i];
  return out;
}

export function isIpv4(address: Uint8Array): bool {
  for (let i = 0; i < 10; i++) if (address[i] != 0) return false;
  return address[10] == 0xff && address[11] == 0xff;
}

/** A CIDR range such as "10.0.0.0/8" or "2001:db8::/32"; a bare address is a one-address range. */
export class IpRange {
  constructor(public network: Uint8Array, public prefix: i32) {}

  /** Null when `cidr` is not an address or a CIDR range (host bits may be set; they are ignored). */
  static parse(cidr: string): IpRange | null {
    const slash = cidr.indexOf("/");
    const text = slash < 0 ? cidr : cidr.substring(0, slash);
    const address = parseIp(text);
    if (address === null) return null;
    // An IPv4 prefix counts bits of the last 32 of the 128.
    const offset = text.indexOf(":") < 0 ? 96 : 0;
    let prefix = 128;
    if (slash >= 0) {
      const bits = cidr.substring(slash + 1).trim();
      if (bits.length == 0 || bits.length > 3) return null;
      for (let i = 0; i < bits.length; i++) if (bits.charCodeAt(i) < 0x30 || bits.charCodeAt(i) > 0x39) return null;
      prefix = I32.parseInt(bits) + offset;
      if (prefix > 128) return null;
    }
    return new IpRange(address, prefix);
  }

  contains(address: Uint8Array): bool {
    const whole = this.prefix >> 3;
    for (let i = 0; i < whole; i++) if (address[i] != this.network[i]) return false;
    const rest = this.prefix & 7;
    if (rest == 0) return true;
    const mask: i32 = (0xff << (8 - rest)) & 0xff;
    return (<i32>address[whole] & mask) == (<i32>this.network[whole] & mask);
  }
}

/** Whether any of `ranges` contains `address`. */
export function inAnyRange(address: Uint8Array, ranges: Array<IpRange>): bool {
  for (let i = 0; i < ranges.length; i++) if (ranges[i].contains(address)) return true;
  return false;
}
