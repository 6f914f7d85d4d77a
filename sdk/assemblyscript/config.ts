// The filter's config (the WasmFilter's `config` object). It is fixed for the life of an
// instance (a new config gets a new instance), so it is parsed once and kept.
import { weft_config } from "./abi";
import { readText } from "./blocks";
import { Json, JsonKind } from "./json";

let parsed: Json | null = null;

/** The whole config as JSON text. */
export function configJson(): string {
  const text = readText(weft_config());
  return text === null ? "{}" : text;
}

/** The whole config, parsed. */
export function config(): Json {
  let value = parsed;
  if (value === null) {
    value = Json.parse(configJson());
    if (value === null) throw new Error("the filter's config is not JSON");
    parsed = value;
  }
  return value;
}

function member(key: string, kind: JsonKind, kindName: string): Json | null {
  const value = config().get(key);
  if (value === null || value.isNull()) return null;
  if (value.kind != kind) throw new Error("config." + key + " must be " + kindName + ", not " + value.raw());
  return value;
}

/** A top-level string of the config, or null when it is absent. */
export function configString(key: string): string | null {
  const value = member(key, JsonKind.String, "a string");
  return value === null ? null : value.str;
}

export function configNumber(key: string, fallback: f64): f64 {
  const value = member(key, JsonKind.Number, "a number");
  return value === null ? fallback : value.num;
}

export function configBool(key: string, fallback: bool): bool {
  const value = member(key, JsonKind.Bool, "true or false");
  return value === null ? fallback : value.bool;
}
