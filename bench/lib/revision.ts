// The weft builds a run measures: this work tree, and with `--compare REV` a second copy of weft at
// REV, built the same way, so that both run in the same rounds on the same machine.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";

/** One weft the scenarios run: where its sources and its bundle (dist/weft.mjs) are. */
export interface WeftBuild {
  /** In a comparison, the revision given to --compare is "before" and this work tree "after". */
  role: "before" | "after";
  repo: string;
  commit: string;
  /** Uncommitted changes to what the sidecar is built from (this work tree only). */
  dirty: boolean;
  /** What the tables call it: --label, or the short commit ("+" when dirty). */
  name: string;
  /** How the copy got its node_modules (a revision only). */
  nodeModules?: "linked" | "npm ci";
  /** The revision as given on the command line (a revision only). */
  rev?: string;
}

const git = (repo: string, args: string[]) =>
  execFileSync("git", args, { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

/** The folders the sidecar's bundle is built from: changes elsewhere do not change what is measured. */
const SIDECAR_SOURCES = ["proxy", "shared", "bin", "package.json", "package-lock.json"];

export function workTree(repo: string, label?: string): WeftBuild {
  const role = "after";
  try {
    const commit = git(repo, ["rev-parse", "HEAD"]);
    const dirty = git(repo, ["status", "--porcelain", "--", ...SIDECAR_SOURCES]) !== "";
    return { role, repo, commit, dirty, name: label ?? `${commit.slice(0, 7)}${dirty ? "+" : ""}` };
  } catch {
    return { role, repo, commit: "none", dirty: true, name: label ?? "work tree" };
  }
}

/**
 * Exports REV's tracked files into `dir` (git archive: no worktree registered in the repository,
 * nothing to prune if the run is killed), gives it node_modules and builds its bundle. When REV's
 * package-lock.json is this tree's byte for byte, node_modules is a symlink to this tree's (seconds);
 * otherwise `npm ci` installs REV's own (minutes, from the registry).
 */
export function prepareRevision(repo: string, rev: string, dir: string, log: (msg: string) => void): WeftBuild {
  let commit: string;
  try {
    commit = git(repo, ["rev-parse", "--verify", "--quiet", `${rev}^{commit}`]);
  } catch {
    throw new Error(`--compare ${rev}: not a commit of this repository (git rev-parse found nothing); give a hash, tag or branch`);
  }
  const short = commit.slice(0, 7);
  mkdirSync(dir, { recursive: true });
  const tar = join(dir, "..", `weft-${short}.tar`);
  git(repo, ["archive", "--format=tar", "-o", tar, commit]);
  execFileSync("tar", ["-xf", tar, "-C", dir], { stdio: ["ignore", "ignore", "pipe"] });
  rmSync(tar, { force: true });

  const lock = (p: string) => (existsSync(p) ? readFileSync(p) : undefined);
  const mine = lock(join(repo, "package-lock.json"));
  const theirs = lock(join(dir, "package-lock.json"));
  let nodeModules: "linked" | "npm ci";
  if (mine !== undefined && theirs !== undefined && mine.equals(theirs) && existsSync(join(repo, "node_modules"))) {
    symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"), "dir");
    nodeModules = "linked";
  } else {
    log(`  ${short}'s package-lock.json differs from this tree's: npm ci in ${dir} (this takes minutes)`);
    execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"], timeout: 20 * 60_000 });
    nodeModules = "npm ci";
  }
  execFileSync("npm", ["run", "--silent", "build"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"], timeout: 5 * 60_000 });
  if (!existsSync(join(dir, "dist", "weft.mjs"))) throw new Error(`--compare ${rev}: \`npm run build\` in ${dir} made no dist/weft.mjs`);

  // The bench writes one configuration for both builds; say so when REV's schema is not this tree's.
  const schemaSame = gitSucceeds(repo, ["diff", "--quiet", commit, "--", "proxy/config/schema.ts"]);
  if (!schemaSame) {
    log(
      `  note: proxy/config/schema.ts differs between ${short} and this tree; the bench writes one configuration for both, so a ${short} scenario that fails to start may be refusing it`,
    );
  }
  return { role: "before", repo: dir, commit, dirty: false, name: short, nodeModules, rev };
}

function gitSucceeds(repo: string, args: string[]): boolean {
  try {
    execFileSync("git", args, { cwd: repo, stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
