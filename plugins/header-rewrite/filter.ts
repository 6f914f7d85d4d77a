// header-rewrite: removes, sets and adds request and response headers; values are templates
// over the request ("{{request.header.x-user}}", "{{source.principal}}", ...).
import { Continue, config, fail, Json, request, response, attribute } from "@weft/sdk";

// A template is literal text and variables; a variable is a kind and, for headers, a name.
const LITERAL = 0;
const REQUEST_HEADER = 1;
const RESPONSE_HEADER = 2;
const ATTRIBUTE = 3;
const METHOD = 4;
const PATH = 5;
const AUTHORITY = 6;
const SCHEME = 7;
const STATUS = 8;

class Part {
  constructor(public kind: i32, public text: string) {}
}

class Edit {
  constructor(public name: string, public value: Array<Part>) {}
}

class Rules {
  toRemove: Array<string> = [];
  toSet: Array<Edit> = [];
  toAdd: Array<Edit> = [];
}

let requestRules: Rules | null = null;
let responseRules: Rules | null = null;
let problem: string = "";

function variable(name: string, responsePhase: bool): Part | null {
  if (name.startsWith("request.header.") && name.length > 15) return new Part(REQUEST_HEADER, name.substring(15).toLowerCase());
  if (responsePhase && name.startsWith("response.header.") && name.length > 16) return new Part(RESPONSE_HEADER, name.substring(16).toLowerCase());
  if (name == "request.method") return new Part(METHOD, "");
  if (name == "request.path") return new Part(PATH, "");
  if (name == "request.authority") return new Part(AUTHORITY, "");
  if (name == "request.scheme") return new Part(SCHEME, "");
  if (name == "request.id") return new Part(ATTRIBUTE, "request_id");
  if (name == "source.address" || name == "source.principal" || name == "direction") return new Part(ATTRIBUTE, name);
  if (responsePhase && name == "response.status") return new Part(STATUS, "");
  return null;
}

/** Splits "a {{request.path}} b" into parts; null (with `problem` set) if a variable is unknown. */
function parseTemplate(template: string, where: string, responsePhase: bool): Array<Part> | null {
  const parts = new Array<Part>();
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf("{{", at);
    if (open < 0) break;
    const close = template.indexOf("}}", open + 2);
    if (close < 0) {
      problem = where + ': "{{" without a closing "}}"';
      return null;
    }
    if (open > at) parts.push(new Part(LITERAL, template.substring(at, open)));
    const name = template.substring(open + 2, close).trim();
    const part = variable(name, responsePhase);
    if (part === null) {
      problem = where + ": unknown variable {{" + name + "}}" + (name.startsWith("response.") ? " (response variables exist only in response rules)" : "");
      return null;
    }
    parts.push(part);
    at = close + 2;
  }
  if (at < template.length) parts.push(new Part(LITERAL, template.substring(at)));
  return parts;
}

function parseEdits(section: Json, key: string, where: string, responsePhase: bool, into: Array<Edit>): bool {
  const list = section.get(key);
  if (list === null) return true;
  for (let i = 0; i < list.length; i++) {
    const edit = list.items[i];
    const parts = parseTemplate(edit.getString("value")!, where + "." + key + "[" + i.toString() + "].value", responsePhase);
    if (parts === null) return false;
    into.push(new Edit(edit.getString("name")!, parts));
  }
  return true;
}

function parseRules(name: string, responsePhase: bool): Rules | null {
  const rules = new Rules();
  const section = config().get(name);
  if (section === null) return rules;
  rules.toRemove = section.getStrings("remove");
  const where = "config." + name;
  if (!parseEdits(section, "set", where, responsePhase, rules.toSet)) return null;
  if (!parseEdits(section, "add", where, responsePhase, rules.toAdd)) return null;
  return rules;
}

/** The template's value, or null when a variable in it has no value (an absent header, no mTLS peer). */
function render(parts: Array<Part>): string | null {
  let out: string | null = null;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    let value: string | null = null;
    if (part.kind == LITERAL) value = part.text;
    else if (part.kind == REQUEST_HEADER) value = request.header(part.text);
    else if (part.kind == RESPONSE_HEADER) value = response.header(part.text);
    else if (part.kind == ATTRIBUTE) value = attribute(part.text);
    else if (part.kind == METHOD) value = request.method;
    else if (part.kind == PATH) value = request.path;
    else if (part.kind == AUTHORITY) value = request.authority;
    else if (part.kind == SCHEME) value = request.scheme;
    else if (part.kind == STATUS) value = response.status.toString();
    if (value === null) return null;
    // A one-part template is its value as it is, without a copy.
    out = out === null ? value : out + value;
  }
  return out === null ? "" : out;
}

// Kept across calls, so that a call allocates only the values themselves.
const setValues = new Array<string | null>();
const addValues = new Array<string | null>();

// Values are rendered before any header changes, so a rule reads the message as it arrived.
function apply(rules: Rules, responsePhase: bool): void {
  setValues.length = 0;
  for (let i = 0; i < rules.toSet.length; i++) setValues.push(render(rules.toSet[i].value));
  addValues.length = 0;
  for (let i = 0; i < rules.toAdd.length; i++) addValues.push(render(rules.toAdd[i].value));
  for (let i = 0; i < rules.toRemove.length; i++) {
    if (responsePhase) response.removeHeader(rules.toRemove[i]);
    else request.removeHeader(rules.toRemove[i]);
  }
  // "set" means the header ends up with exactly this value, so with no value it is removed
  // (a client cannot slip its own x-user past a rule whose source is absent).
  for (let i = 0; i < rules.toSet.length; i++) {
    const name = rules.toSet[i].name;
    const value = setValues[i];
    if (responsePhase) {
      if (value === null) response.removeHeader(name);
      else response.setHeader(name, value);
    } else {
      if (value === null) request.removeHeader(name);
      else request.setHeader(name, value);
    }
  }
  for (let i = 0; i < rules.toAdd.length; i++) {
    const value = addValues[i];
    if (value === null) continue;
    if (responsePhase) response.addHeader(rules.toAdd[i].name, value);
    else request.addHeader(rules.toAdd[i].name, value);
  }
}

export function on_request_headers(): i32 {
  if (requestRules === null) requestRules = parseRules("request", false);
  const rules = requestRules;
  if (rules === null) return fail(problem);
  apply(rules, false);
  return Continue;
}

export function on_response_headers(): i32 {
  if (responseRules === null) responseRules = parseRules("response", true);
  const rules = responseRules;
  if (rules === null) return fail(problem);
  apply(rules, true);
  return Continue;
}
