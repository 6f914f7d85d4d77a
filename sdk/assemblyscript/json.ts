// A small JSON reader for filter configs and JWT claims. Untrusted input (a token's payload)
// must not abort the filter, so malformed text gives null instead of an error.

export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

// Deeper nesting than this is refused rather than risking the call stack.
const MAX_DEPTH = 64;

export class Json {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  /** Array elements, or object values (matching `keys`). */
  items: Array<Json> = [];
  keys: Array<string> = [];
  // Where the value's text is, set by the parser for raw().
  source: string = "";
  start: i32 = 0;
  end: i32 = 0;

  /** Parses one JSON value (the whole text); null if the text is not JSON. */
  static parse(text: string): Json | null {
    const parser = new Parser(text);
    parser.space();
    const value = parser.value(0);
    parser.space();
    return value !== null && parser.pos == text.length ? value : null;
  }

  /** The member `key` of an object, or null (also when this is not an object). */
  get(key: string): Json | null {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.items[i];
    return null;
  }

  /** Element `index` of an array, or null. */
  at(index: i32): Json | null {
    return this.kind == JsonKind.Array && index >= 0 && index < this.items.length ? this.items[index] : null;
  }

  /** Elements of an array or members of an object; 0 otherwise. */
  get length(): i32 {
    return this.items.length;
  }

  isNull(): bool {
    return this.kind == JsonKind.Null;
  }
  isBool(): bool {
    return this.kind == JsonKind.Bool;
  }
  isNumber(): bool {
    return this.kind == JsonKind.Number;
  }
  isString(): bool {
    return this.kind == JsonKind.String;
  }
  isArray(): bool {
    return this.kind == JsonKind.Array;
  }
  isObject(): bool {
    return this.kind == JsonKind.Object;
  }

  /** The member `key` if it is a string, else null. */
  getString(key: string): string | null {
    const value = this.get(key);
    return value !== null && value.kind == JsonKind.String ? value.str : null;
  }

  /** The member `key` if it is a number, else `fallback`. */
  getNumber(key: string, fallback: f64): f64 {
    const value = this.get(key);
    return value !== null && value.kind == JsonKind.Number ? value.num : fallback;
  }

  /** The member `key` if it is a boolean, else `fallback`. */
  getBool(key: string, fallback: bool): bool {
    const value = this.get(key);
    return value !== null && value.kind == JsonKind.Bool ? value.bool : fallback;
  }

  /** The strings of the array member `key` (other elements are skipped); empty if absent. */
  getStrings(key: string): Array<string> {
    const strings = new Array<string>();
    const value = this.get(key);
    if (value === null || value.kind != JsonKind.Array) return strings;
    for (let i = 0; i < value.items.length; i++) if (value.items[i].kind == JsonKind.String) strings.push(value.items[i].str);
    return strings;
  }

  /** The value's JSON text exactly as it appeared in the input. */
  raw(): string {
    return this.source.substring(this.start, this.end);
  }

  /** Strings as they are, anything else as its JSON text (how config_get hands values out). */
  toString(): string {
    return this.kind == JsonKind.String ? this.str : this.raw();
  }
}

class Parser {
  pos: i32 = 0;
  constructor(private text: string) {}

  space(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.pos++;
    }
  }

  private literal(word: string): bool {
    if (this.text.substr(this.pos, word.length) != word) return false;
    this.pos += word.length;
    return true;
  }

  value(depth: i32): Json | null {
    if (depth > MAX_DEPTH || this.pos >= this.text.length) return null;
    const node = new Json();
    node.source = this.text;
    node.start = this.pos;
    const c = this.text.charCodeAt(this.pos);
    let ok = true;
    if (c == 0x7b /* { */) {
      node.kind = JsonKind.Object;
      ok = this.object(node, depth);
    } else if (c == 0x5b /* [ */) {
      node.kind = JsonKind.Array;
      ok = this.array(node, depth);
    } else if (c == 0x22 /* " */) {
      node.kind = JsonKind.String;
      const s = this.string();
      ok = s !== null;
      if (s !== null) node.str = s;
    } else if (this.literal("true")) {
      node.kind = JsonKind.Bool;
      node.bool = true;
    } else if (this.literal("false")) {
      node.kind = JsonKind.Bool;
    } else if (this.literal("null")) {
      node.kind = JsonKind.Null;
    } else {
      node.kind = JsonKind.Number;
      ok = this.number(node);
    }
    node.end = this.pos;
    return ok ? node : null;
  }

  private object(node: Json, depth: i32): bool {
    this.pos++;
    this.space();
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x7d /* } */) {
      this.pos++;
      return true;
    }
    while (true) {
      this.space();
      if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x22) return false;
      const key = this.string();
      if (key === null) return false;
      this.space();
      if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x3a /* : */) return false;
      this.pos++;
      this.space();
      const value = this.value(depth + 1);
      if (value === null) return false;
      node.keys.push(key);
      node.items.push(value);
      this.space();
      if (this.pos >= this.text.length) return false;
      const c = this.text.charCodeAt(this.pos++);
      if (c == 0x7d /* } */) return true;
      if (c != 0x2c /* , */) return false;
    }
  }

  private array(node: Json, depth: i32): bool {
    this.pos++;
    this.space();
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x5d /* ] */) {
      this.pos++;
      return true;
    }
    while (true) {
      this.space();
      const value = this.value(depth + 1);
      if (value === null) return false;
      node.items.push(value);
      this.space();
      if (this.pos >= this.text.length) return false;
      const c = this.text.charCodeAt(this.pos++);
      if (c == 0x5d /* ] */) return true;
      if (c != 0x2c /* , */) return false;
    }
  }

  private digits(): i32 {
    const from = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c < 0x30 || c > 0x39) break;
      this.pos++;
    }
    return this.pos - from;
  }

  private number(node: Json): bool {
    const from = this.pos;
    if (this.text.charCodeAt(this.pos) == 0x2d /* - */) this.pos++;
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x30 /* 0 */) this.pos++;
    else if (this.digits() == 0) return false;
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x2e /* . */) {
      this.pos++;
      if (this.digits() == 0) return false;
    }
    if (this.pos < this.text.length && (this.text.charCodeAt(this.pos) | 0x20) == 0x65 /* e */) {
      this.pos++;
      if (this.pos < this.text.length && (this.text.charCodeAt(this.pos) == 0x2b || this.text.charCodeAt(this.pos) == 0x2d)) this.pos++;
      if (this.digits() == 0) return false;
    }
    node.num = parseFloat(this.text.substring(from, this.pos));
    return true;
  }

  private hex4(): i32 {
    if (this.pos + 4 > this.text.length) return -1;
    let code = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.text.charCodeAt(this.pos++);
      let digit: i32;
      if (c >= 0x30 && c <= 0x39) digit = c - 0x30;
      else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) digit = (c | 0x20) - 0x61 + 10;
      else return -1;
      code = (code << 4) | digit;
    }
    return code;
  }

  /** A string literal at pos (on its opening quote); escapes decoded. */
  private string(): string | null {
    this.pos++;
    let out = "";
    let run = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c == 0x22 /* " */) {
        out += this.text.substring(run, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) return null;
      if (c != 0x5c /* \ */) {
        this.pos++;
        continue;
      }
      out += this.text.substring(run, this.pos);
      this.pos++;
      if (this.pos >= this.text.length) return null;
      const e = this.text.charCodeAt(this.pos++);
      if (e == 0x22 || e == 0x5c || e == 0x2f) out += String.fromCharCode(e);
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75 /* u */) {
        // Surrogate pairs arrive as two \u escapes; UTF-16 strings take them unit by unit.
        const code = this.hex4();
        if (code < 0) return null;
        out += String.fromCharCode(code);
      } else return null;
      run = this.pos;
    }
    return null;
  }
}
