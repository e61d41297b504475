// Job directories for driver tests, laid out as the job runner lays them out (a private folder
// under `<work dir>/jobs/`, then `job/` per agent/PROTOCOL.md).
import { chmod, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

import { createJobLayout, newNonce, writeJobEnv } from "../agent/job-dir.ts";

export async function makeJobDir(
  workDir: string,
  context: Record<string, string | Buffer>,
  dockerfile = "Dockerfile",
): Promise<{ folder: string; jobDir: string; nonce: string }> {
  await mkdir(join(workDir, "jobs"), { recursive: true, mode: 0o711 });
  await chmod(workDir, 0o711);
  const folder = await mkdtemp(join(workDir, "jobs", "test-"));
  await chmod(folder, 0o711);
  const jobDir = join(folder, "job");
  await createJobLayout(jobDir);
  for (const [path, content] of Object.entries(context)) {
    const target = join(jobDir, "context", path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content, { mode: 0o755 });
  }
  const nonce = newNonce();
  await writeJobEnv(jobDir, { nonce, dockerfile });
  return { folder, jobDir, nonce };
}

/** `RUN` in exec form with busybox's sh, for images made of nothing but /bin/busybox. */
export function busyboxRun(script: string): string {
  return `RUN ["/bin/busybox", "sh", "-c", ${JSON.stringify(script)}]`;
}
