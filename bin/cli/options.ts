// The kinds of value weft's flags take. Each turns the text given into the value a command runs
// with, or says which flag (or environment variable) had which bad value and what it wants; the
// runner reports every bad one at once, as a usage error.
import { isIpv4Cidr } from "../../shared/ipv4.ts";

export interface Option<T> {
  /** node:util parseArgs' kind: "boolean" is a flag without a value. */
  readonly type: "string" | "boolean";
  readonly short?: string;
  /** The environment variable read when the flag is not given (the injected sidecar's settings); empty counts as unset. */
  readonly env?: string;
  /** The value when neither the flag nor its variable is given. */
  readonly default?: T;
  /** The value `text` stands for; throws an Error that names `name` (the flag or the variable) when it stands for none. */
  parse(text: string, name: string): T;
}

export type Options = Readonly<Record<string, Option<unknown>>>;

/** What a command's run gets: each option's value, never undefined where the option has a default. */
export type Values<O extends Options> = {
  -readonly [K in keyof O]: O[K] extends Option<infer T> ? (O[K] extends { default: unknown } ? T : T | undefined) : never;
};

interface Settings<T> {
  readonly short?: string;
  readonly env?: string;
  readonly default?: T;
}

const option = <T, S extends Settings<T>>(parse: (text: string, name: string) => T, settings: S | undefined): Option<T> & S =>
  ({ type: "string", parse, ...settings }) as Option<T> & S;

/** "a, b or c" */
const either = (words: readonly string[]) => (words.length > 1 ? `${words.slice(0, -1).join(", ")} or ${words.at(-1)}` : (words[0] ?? ""));

/** Any text. */
export const text = <S extends Settings<string> = object>(settings?: S) => option((t) => t, settings);

/** A flag without a value: true when given. */
export const flag = (settings: { readonly short?: string } = {}): Option<boolean> & { readonly default: boolean } => ({
  type: "boolean",
  default: false,
  parse: () => true,
  ...settings,
});

/** A file or folder: any text but an empty one (an unset shell variable, as in --config "$FILE"). */
export const path = <S extends Settings<string> = object>(settings?: S) =>
  option((t, name) => {
    if (t === "") throw new Error(`${name} must be a path, not an empty string`);
    return t;
  }, settings);

/** A TCP port: a whole number from `min` (0 by default, where a command takes 0 for "any" or "none") to 65535. */
export const port = <S extends Settings<number> = object>(settings?: S & { readonly min?: 0 | 1 }) =>
  option((t, name) => {
    const min = settings?.min ?? 0;
    const n = Number(t.trim());
    if (!/^\d+$/.test(t.trim()) || n < min || n > 65535) throw new Error(`${name}: "${t}" is not a port (${min}-65535)`);
    return n;
  }, settings);

/** Comma-separated ports ("80,8080"; "" for none), each from 1 to 65535. */
export const ports = <S extends Settings<number[]> = object>(settings?: S) => {
  const one = port({ min: 1 });
  return option(
    (t, name) =>
      t
        .split(",")
        .filter((item) => item.trim() !== "")
        .map((item) => {
          try {
            return one.parse(item, name);
          } catch (e) {
            throw new Error(`${(e as Error).message}: give comma-separated ports, like 80,8080`);
          }
        }),
    settings,
  );
};

/**
 * A duration in whole seconds, 1 to `max`, as milliseconds; `what` says what it is in the
 * message ("the push's deadline"), which shows the default where there is one.
 */
export const duration = <S extends Settings<number> = object>(what: string, max: number, settings?: S) =>
  option((t, name) => {
    const n = Number(t);
    const otherwise = settings?.default === undefined ? "" : ` (default ${settings.default / 1000})`;
    if (!/^\d+$/.test(t) || n < 1 || n > max) throw new Error(`${name} ${t}: give ${what} in whole seconds, 1 to ${max}${otherwise}`);
    return n * 1000;
  }, settings);

/** Comma-separated items ("a,b"), none by default; empty items are dropped. */
export const list = (settings: { readonly short?: string } = {}): Option<string[]> & { readonly default: string[] } =>
  option((t) => t.split(",").filter(Boolean), { default: [], ...settings });

/** Comma-separated IPv4 ranges in CIDR notation ("10.96.0.0/12"), none by default. */
export const cidrs = (): Option<string[]> & { readonly default: string[] } =>
  option(
    (t, name) =>
      t
        .split(",")
        .filter((item) => item.trim() !== "")
        .map((item) => {
          if (!isIpv4Cidr(item.trim()))
            throw new Error(`${name}: "${item}" is not an IPv4 range like 10.96.0.0/12 (the address on the range's boundary)`);
          return item.trim();
        }),
    { default: [] },
  );

/** One of `choices`. */
export const choice = <const C extends string, S extends Settings<C> = object>(choices: readonly C[], settings?: S) =>
  option((t, name) => {
    if (!(choices as readonly string[]).includes(t)) throw new Error(`${name} must be ${either(choices)}, not "${t}"`);
    return t as C;
  }, settings);
