// The local fleet host `npm start` runs beside the registry: the daemon as a child process with the
// best driver available, its output prefixed. When no driver works here (no buildah, say), it says
// how to get one and the registry runs on without a fleet: builds then wait in the queue.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const DAEMON = fileURLToPath(new URL("./bin/build-fleet.ts", import.meta.url));
/** How long a stopping local host may take to hand running builds back. */
const LOCAL_SHUTDOWN_GRACE_S = 3;

export interface LocalFleetOptions {
  registryUrl: string;
  credential: string;
  workDir: string;
  /** `auto` (default), `namespace` or `kvm`. */
  driver?: string;
  log(line: string): void;
}

export interface LocalFleetHost {
  /** SIGTERM, then waits for the daemon to hand back or finish its builds and exit. */
  stop(): Promise<void>;
}

export function startLocalFleetHost(options: LocalFleetOptions): LocalFleetHost {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      DAEMON,
      "--registry",
      options.registryUrl,
      "--driver",
      options.driver ?? "auto",
      "--work-dir",
      options.workDir,
      "--host-id",
      "local",
      "--shutdown-grace",
      String(LOCAL_SHUTDOWN_GRACE_S),
      // If `npm start` dies without stopping it, the pipe closes and the host stops too.
      "--stop-with-stdin",
    ],
    {
      // The credential goes by environment, not argv (which every user can read in ps).
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LANG: process.env.LANG ?? "C.UTF-8",
        BUILD_FLEET_CREDENTIAL: options.credential,
      },
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      // The daemon's own timestamps are noise beside the registry's output.
      options.log(`[fleet] ${line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, "")}`);
    });
  }
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  void exited.then((code) => {
    if (code === 1) {
      options.log(
        "[fleet] no local build host: builds stay queued until one connects " +
          "(Debian: apt-get install buildah runc bubblewrap uidmap busybox-static; see build-fleet/README.md)",
      );
    }
  });
  return {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), (LOCAL_SHUTDOWN_GRACE_S + 3) * 1000);
      await exited;
      clearTimeout(killer);
    },
  };
}
