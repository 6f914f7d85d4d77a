// What a fuzz target is, and the checks every target shares. A target takes arbitrary bytes,
// feeds them to one peer-facing parser and throws only when an invariant breaks: a parser
// that refuses input with its own error type is doing its job, so targets catch those.
// Targets run on Node, Deno and Bun (the corpus replay in npm test), so nothing here may
// depend on the engine's Node-only coverage machinery.

export interface FuzzTarget {
  /** Also the corpus folder's name: test/fuzz/corpus/<name>/. */
  readonly name: string;
  /** One line: what is parsed and what is asserted. */
  readonly about: string;
  /** Repository-relative files whose coverage the engine reports for this target. */
  readonly sources: readonly string[];
  /** Inputs longer than this are cut by the mutator. */
  readonly maxLength: number;
  /** Tokens the mutator inserts: field names, keywords, numbers at edges. */
  readonly dictionary: readonly string[];
  /** The input is JSON text: the mutator also edits it as a tree. */
  readonly json?: boolean;
  /** Valid inputs to start from when the corpus folder is empty. */
  seeds(): Uint8Array[] | Promise<Uint8Array[]>;
  /** Returns when the input met every invariant; throws an InvariantError or any crash otherwise. */
  fuzz(data: Uint8Array): void | Promise<void>;
}

/** An invariant broke; anything else a target throws is a crash of the code under test. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvariantError";
  }
}

export function check(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === "string" ? message : message());
}

/** An error the parser threw: a refusal (undefined) when `expected` accepts it, else rethrown for the engine to report. */
function refusal(e: unknown, expected: (e: unknown) => boolean): undefined {
  if (!expected(e)) throw e;
  // An empty message tells an operator nothing.
  check((e as Error).message.length > 0, `${(e as Error).name} without a message`);
  return undefined;
}

/** Runs `parse`; its result, or undefined when it refused the input the way `expected` accepts. */
export function refusedOr<T>(parse: () => T, expected: (e: unknown) => boolean): T | undefined {
  try {
    return parse();
  } catch (e) {
    return refusal(e, expected);
  }
}

export async function refusedOrAsync<T>(parse: () => Promise<T>, expected: (e: unknown) => boolean): Promise<T | undefined> {
  try {
    return await parse();
  } catch (e) {
    return refusal(e, expected);
  }
}

/** The bytes as text the way a parser that reads latin1 sees them: one character per byte. */
export const latin1 = (data: Uint8Array): string => String.fromCharCode(...data);

/** The bytes as UTF-8 text, invalid sequences replaced, as JSON bodies are read. */
export const utf8 = (data: Uint8Array): string => new TextDecoder().decode(data);

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** FNV-1a: a seed that is the same for the same input, for choices a target derives from it. */
function hash(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of data) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

/**
 * Cut points for `data`, from 0 to its length, derived from its content so that a corpus
 * file replays with the same cuts everywhere: `count` random ones, sorted, without repeats.
 */
export function cutsOf(data: Uint8Array, count: number): number[] {
  let state = hash(data) || 1;
  const cuts = new Set<number>();
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    cuts.add((state >>> 0) % (data.length + 1));
  }
  return [...cuts].sort((a, b) => a - b);
}

/** `data` cut at `cuts` into consecutive pieces (empty ones dropped). */
export function piecesOf(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [0, ...cuts, data.length];
  const pieces: Uint8Array[] = [];
  for (let i = 1; i < points.length; i++) if (points[i] > points[i - 1]) pieces.push(data.subarray(points[i - 1], points[i]));
  return pieces;
}
