// Runs the host tools the image build uses (esbuild, ldd, strip, tar, gzip, skopeo) and turns
// their failures into messages that say which tool and how to get it.
import { execFile } from "node:child_process";

/** Debian packages that hold each tool, for the "install it" advice. */
const PACKAGES: Record<string, string> = {
  strip: "binutils",
  tar: "tar",
  gzip: "gzip",
  skopeo: "skopeo",
};

export class ToolError extends Error {}

/** Runs `command` and returns its stdout; throws a ToolError that says what failed and what to do. */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { ...options, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const code = (error as NodeJS.ErrnoException).code;
      const name = command.split("/").pop()!;
      if (code === "ENOENT") {
        const pkg = PACKAGES[name];
        return reject(
          new ToolError(
            `${command} is missing: the image build needs it${pkg ? `; install it with "apt-get install ${pkg}" (.ci/run does)` : ""}`,
          ),
        );
      }
      reject(
        new ToolError(
          `${command} ${args.join(" ")} failed (exit ${error.code ?? error.signal}): ${(stderr || stdout || error.message).trim()}`,
        ),
      );
    });
  });
}

/** The first line of `tool --version`: a cache key part, so a new tool version rebuilds what it made. */
export async function toolVersion(tool: string): Promise<string> {
  return (await run(tool, ["--version"])).split("\n")[0]!.trim();
}
