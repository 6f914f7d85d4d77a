// Gateway API's path modifier, which redirects (RequestRedirect) and rewrites (URLRewrite)
// share: the whole path replaced, or the prefix the route's PathPrefix matched.
import type { PathMatch, PathModifier } from "../config/schema.ts";

/** `path` (without its query) under `modifier`; `matched` is the route's path match. */
export function modifiedPath(modifier: PathModifier | undefined, path: string, matched: PathMatch | undefined): string {
  if (!modifier) return path;
  if (modifier.type === "ReplaceFullPath") return modifier.value;
  // The configuration check makes sure a ReplacePrefixMatch route matches a PathPrefix.
  const prefix = matched?.type === "PathPrefix" ? matched.value.replace(/\/+$/, "") : "";
  const rest = path.slice(prefix.length);
  const replacement = modifier.value.replace(/\/+$/, "");
  // "/prefix" replaced in "/prefix/a" keeps one slash between the replacement and the rest.
  const joined = `${replacement}${rest.startsWith("/") || rest === "" ? rest : `/${rest}`}`;
  return joined === "" ? "/" : joined;
}

/** The request target `target` (path and query) with its path modified; the query is kept. */
export function modifiedTarget(modifier: PathModifier | undefined, target: string, matched: PathMatch | undefined): string {
  const query = target.indexOf("?");
  const path = query === -1 ? target : target.slice(0, query);
  return `${modifiedPath(modifier, path, matched)}${query === -1 ? "" : target.slice(query)}`;
}
