// A base image for build tests, made here because there is no Docker Hub: `scratch` plus Debian's
// static busybox (`/bin/busybox`, `/bin/sh` and the usual applets as symlinks), committed by
// buildah into an OCI archive with storage of its own, so the host's containers storage is
// untouched.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The applets a Dockerfile's RUN steps in the tests use, linked to busybox. */
const APPLETS = ["sh", "cat", "echo", "ls", "mkdir", "touch", "wget", "nc", "id", "test", "rm"];

export interface BaseImageArchive {
  /** An `oci-archive:` path holding the image (for `skopeo copy oci-archive:<path> …`). */
  archive: string;
  cleanup(): Promise<void>;
}

export async function buildBusyboxBaseImage(): Promise<BaseImageArchive> {
  const work = await mkdtemp(join(tmpdir(), "base-image-"));
  const rootfs = join(work, "rootfs");
  await mkdir(join(rootfs, "bin"), { recursive: true });
  await run("cp", ["/bin/busybox", join(rootfs, "bin", "busybox")]);
  for (const applet of APPLETS) await symlink("busybox", join(rootfs, "bin", applet));

  const buildah = (...args: string[]) =>
    run(
      "buildah",
      [
        `--root=${join(work, "storage")}`,
        `--runroot=${join(work, "run")}`,
        "--storage-driver=vfs",
        ...args,
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
  try {
    const container = (await buildah("from", "scratch")).stdout.trim();
    await buildah("copy", container, `${rootfs}/`, "/");
    await buildah("config", "--env", "PATH=/bin", "--cmd", "/bin/sh", container);
    const archive = join(work, "base.tar");
    await buildah("commit", "--format=oci", container, `oci-archive:${archive}:latest`);
    await buildah("rm", container);
    return {
      archive,
      cleanup: () => rm(work, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    throw error;
  }
}
