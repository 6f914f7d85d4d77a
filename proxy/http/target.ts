// The parts of a request target (origin-form: path and query) that routing and filter
// selection read.

/** The path of `target`, without its query. */
export function pathOf(target: string): string {
  const query = target.indexOf("?");
  return query === -1 ? target : target.slice(0, query);
}
