// The builder VM image on this host (made by make-builder-image.sh): where it is, whether it is
// whole and current, and making it when asked. Its layout is `<dir>/current -> <stamp>-<time>/`
// holding `vmlinux`, `root.ext4` and `manifest` (key=value lines).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const MAKE_IMAGE_SCRIPT = fileURLToPath(new URL("./make-builder-image.sh", import.meta.url));
const IMAGE_CONF = fileURLToPath(new URL("./image.conf", import.meta.url));
const GUEST_INIT = fileURLToPath(new URL("./guest/init", import.meta.url));
/** The script's own default output, git-ignored. */
export const DEFAULT_IMAGE_DIR = fileURLToPath(new URL("./.image", import.meta.url));

export interface BuilderImage {
  /** The resolved image directory: a VM uses these exact files even if `current` moves. */
  dir: string;
  kernel: string;
  root: string;
  kernelVersion: string;
  buildah: string;
}

export type BuilderImageCheck = { ok: true; image: BuilderImage } | { ok: false; reason: string };

/**
 * The stamp make-builder-image.sh writes: the first 16 hex digits of sha256(image.conf ‖
 * guest/init). An image made from other inputs would boot an init this driver does not expect.
 */
export async function expectedImageStamp(): Promise<string> {
  const hash = createHash("sha256");
  hash.update(await readFile(IMAGE_CONF));
  hash.update(await readFile(GUEST_INIT));
  return hash.digest("hex").slice(0, 16);
}

export async function findBuilderImage(imageDir: string): Promise<BuilderImageCheck> {
  const remedy = `run ${MAKE_IMAGE_SCRIPT} --out ${imageDir} (as root, about 1.5 minutes)`;
  let dir: string;
  let manifest: Map<string, string>;
  try {
    dir = await realpath(join(imageDir, "current"));
    manifest = parseManifest(await readFile(join(dir, "manifest"), "utf8"));
  } catch {
    return { ok: false, reason: `no builder VM image in ${imageDir}: ${remedy}` };
  }
  const stamp = await expectedImageStamp();
  if (manifest.get("stamp") !== stamp) {
    return { ok: false, reason: `the builder VM image in ${imageDir} is out of date: ${remedy}` };
  }
  const kernel = join(dir, manifest.get("kernel") ?? "vmlinux");
  const root = join(dir, manifest.get("root") ?? "root.ext4");
  for (const file of [kernel, root]) {
    if (!(await isFile(file)))
      return { ok: false, reason: `the builder VM image lacks ${file}: ${remedy}` };
  }
  return {
    ok: true,
    image: {
      dir,
      kernel,
      root,
      kernelVersion: manifest.get("kernel_version") ?? "unknown",
      buildah: manifest.get("buildah") ?? "unknown",
    },
  };
}

/**
 * Runs make-builder-image.sh (a no-op when the image is current) and returns the image. Output
 * lines go to `onLine`; `scriptArgs` are passed on (e.g. `--mirror`). Needs root, debootstrap and
 * a Debian mirror.
 */
export async function ensureBuilderImage(
  imageDir: string,
  onLine: (line: string) => void = () => {},
  scriptArgs: string[] = [],
): Promise<BuilderImage> {
  const found = await findBuilderImage(imageDir);
  if (found.ok) return found.image;
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(MAKE_IMAGE_SCRIPT, ["--out", imageDir, ...scriptArgs], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let partial = "";
    const forward = (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    };
    child.stdout.on("data", forward);
    child.stderr.on("data", forward);
    child.on("error", reject);
    child.on("close", (exitCode) => {
      if (partial !== "") onLine(partial);
      resolve(exitCode);
    });
  });
  if (code !== 0) throw new Error(`make-builder-image.sh failed (exit status ${code})`);
  const made = await findBuilderImage(imageDir);
  if (!made.ok) throw new Error(made.reason);
  return made.image;
}

function parseManifest(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) entries.set(line.slice(0, equals), line.slice(equals + 1));
  }
  return entries;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
