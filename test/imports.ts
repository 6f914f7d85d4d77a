// The module specifiers a TypeScript or JavaScript file imports, found by a small lexer rather
// than by regular expressions over the text, so that an import written inside a string, a
// template literal, a comment or a regular expression (as the suites write source code for
// filters) is not taken for one. It finds every form that ties one file to another:
//   import ... from "x"      import type ... from "x"      import "x"
//   export ... from "x"      export type ... from "x"      import("x")  (also `typeof import("x")`)
//   import x = require("x")
// A dynamic import of anything but a string literal (import(name)) names no file and is skipped.

export interface Specifier {
  /** As written, without the quotes. */
  text: string;
  /** 1-based. */
  line: number;
}

type Token = { kind: "name" | "punct" | "string" | "other"; text: string; line: number };

// After these words an expression starts, so a "/" begins a regular expression, not a division.
const BEFORE_EXPRESSION = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "instanceof",
  "yield",
  "await",
]);

function tokens(source: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  // For each template literal whose `${` is open, the brace depth at which its `}` resumes the template.
  const templates: number[] = [];
  let braces = 0;
  const regexAllowed = () => {
    const last = out[out.length - 1];
    if (!last) return true;
    if (last.kind === "punct") return !")]}".includes(last.text);
    return last.kind === "name" && BEFORE_EXPRESSION.has(last.text);
  };
  /** Skips to just past the closing `quote`, counting lines; returns the text between. */
  const quoted = (quote: string): string => {
    const start = ++i;
    while (i < source.length && source[i] !== quote && source[i] !== "\n") {
      if (source[i] === "\\" && source[i + 1] === "\n") line++;
      i += source[i] === "\\" ? 2 : 1;
    }
    return source.slice(start, i++);
  };
  /** Reads template text up to its end or to a `${`, from i (just past the backtick or the `}`). */
  const templateText = () => {
    while (i < source.length) {
      const c = source[i];
      if (c === "\\") {
        if (source[i + 1] === "\n") line++;
        i += 2;
      } else if (c === "`") return void i++;
      else if (c === "$" && source[i + 1] === "{") {
        i += 2;
        templates.push(braces++);
        return;
      } else {
        if (c === "\n") line++;
        i++;
      }
    }
  };
  while (i < source.length) {
    const c = source[i];
    const start = line;
    if (c === "\n") {
      line++;
      i++;
    } else if (/\s/.test(c)) i++;
    else if (c === "/" && source[i + 1] === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && source[i + 1] === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      for (; i < stop; i++) if (source[i] === "\n") line++;
    } else if (c === '"' || c === "'") out.push({ kind: "string", text: quoted(c), line: start });
    else if (c === "`") {
      i++;
      templateText();
      out.push({ kind: "other", text: "`", line: start });
    } else if (c === "/" && regexAllowed()) {
      let inClass = false;
      for (i++; i < source.length && source[i] !== "\n"; i++) {
        if (source[i] === "\\") i++;
        else if (source[i] === "[") inClass = true;
        else if (source[i] === "]") inClass = false;
        else if (source[i] === "/" && !inClass) break;
      }
      i++;
      while (i < source.length && /[A-Za-z]/.test(source[i])) i++;
      out.push({ kind: "other", text: "/re/", line: start });
    } else if (/[A-Za-z_$]/.test(c)) {
      const name = /^[\w$]+/.exec(source.slice(i, i + 256))![0];
      i += name.length;
      out.push({ kind: "name", text: name, line: start });
    } else if (/[0-9]/.test(c)) {
      i += /^[\w.]+/.exec(source.slice(i, i + 64))![0].length;
      out.push({ kind: "other", text: "0", line: start });
    } else {
      i++;
      if (c === "{") braces++;
      else if (c === "}") {
        if (templates.length && templates[templates.length - 1] === --braces) {
          templates.pop();
          templateText();
          continue;
        }
      }
      out.push({ kind: "punct", text: c, line: start });
    }
  }
  return out;
}

/** Every module specifier `source` imports or re-exports, statically or dynamically, in order. */
export function importedSpecifiers(source: string): Specifier[] {
  const found: Specifier[] = [];
  const all = tokens(source);
  const is = (k: number, kind: Token["kind"], text?: string) => all[k]?.kind === kind && (text === undefined || all[k].text === text);
  for (let k = 0; k < all.length; k++) {
    if (is(k - 1, "punct", ".")) continue; // a property: x.from, x.import
    let at = -1;
    if (is(k, "name", "from") && is(k + 1, "string")) at = k + 1;
    else if (is(k, "name", "import") && is(k + 1, "string")) at = k + 1;
    else if ((is(k, "name", "import") || is(k, "name", "require")) && is(k + 1, "punct", "(") && is(k + 2, "string")) at = k + 2;
    if (at >= 0) found.push({ text: all[at].text, line: all[at].line });
  }
  return found;
}
