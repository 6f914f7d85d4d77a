// Kubernetes resource quantities ("50m", "64Mi", "0.5", "1e3"), for the proxy's requests and
// limits: checked as the API server parses them, and compared, so that a request above its limit
// is refused by the injector naming the annotation instead of by the API server naming a
// container the user never wrote.
import * as v from "valibot";

// A non-negative decimal number, then a binary or decimal SI suffix or a decimal exponent.
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const MULTIPLIER: Record<string, number> = {
  "": 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A quantity as a string; `example` completes the error message ("like 64Mi"). */
export const Quantity = (example: string) => v.pipe(v.string(), v.regex(QUANTITY, `must be a Kubernetes quantity, like "${example}"`));

/** The value of a quantity that passed `Quantity` (in cores or bytes), precise enough to compare two. */
export function quantityValue(quantity: string): number {
  const [, number, , suffix = ""] = QUANTITY.exec(quantity) ?? [];
  if (number === undefined) throw new Error(`"${quantity}" is not a Kubernetes quantity`);
  const exponent = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : MULTIPLIER[suffix];
  return Number(number) * exponent;
}
