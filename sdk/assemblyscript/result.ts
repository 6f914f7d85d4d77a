// What a phase function returns: Continue (0) lets the request go on (or sends the reply
// given with respond()); anything else is a failure handled by the filter's failStrategy.
import { error_set } from "./abi";
import { textBlock } from "./blocks";

export const Continue: i32 = 0;

/** Records why the call failed and returns the failure code: `return fail("no key configured")`. */
export function fail(message: string): i32 {
  error_set(textBlock(message));
  return 1;
}
