// Subordinate uid/gid ranges (/etc/subuid, /etc/subgid) for the namespace sandbox: its root is
// mapped to a range of unprivileged host ids, never to the daemon's own uid. newuidmap (which
// `unshare --map-users` runs) grants only ranges listed there, even to root.
import { appendFile, readFile } from "node:fs/promises";
import { userInfo } from "node:os";

/** One sandbox needs 65536 ids (uid 0..65535 inside). */
export const SANDBOX_ID_COUNT = 65_536;
/** What the daemon adds for root when root has no range: 16 sandboxes' worth, disjoint slices. */
export const ROOT_RANGE_COUNT = SANDBOX_ID_COUNT * 16;
const LOWEST_ROOT_RANGE_START = 100_000;

export interface IdRange {
  start: number;
  count: number;
}

export interface SubordinateRanges {
  uid: IdRange;
  gid: IdRange;
}

interface SubidEntry extends IdRange {
  owner: string;
}

export function parseSubidFile(text: string): SubidEntry[] {
  const entries: SubidEntry[] = [];
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const [owner, start, count] = trimmed.split(":");
    if (owner === undefined || start === undefined || count === undefined) continue;
    const startNumber = Number(start);
    const countNumber = Number(count);
    if (!Number.isSafeInteger(startNumber) || !Number.isSafeInteger(countNumber)) continue;
    entries.push({ owner, start: startNumber, count: countNumber });
  }
  return entries;
}

/** The first range of the user (by name or numeric uid) large enough for one sandbox. */
export function findRange(
  entries: SubidEntry[],
  user: { name: string; uid: number },
): IdRange | undefined {
  const entry = entries.find(
    (e) => (e.owner === user.name || e.owner === String(user.uid)) && e.count >= SANDBOX_ID_COUNT,
  );
  return entry === undefined ? undefined : { start: entry.start, count: entry.count };
}

/** A start above every existing range of the file, so the new range overlaps nobody's. */
export function freeRangeStart(entries: SubidEntry[]): number {
  let start = LOWEST_ROOT_RANGE_START;
  for (const entry of entries) start = Math.max(start, entry.start + entry.count);
  return start;
}

async function readEntries(path: string): Promise<SubidEntry[]> {
  try {
    return parseSubidFile(await readFile(path, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

export interface SubordinateOptions {
  subuidPath?: string;
  subgidPath?: string;
  /** Root only: append a range when there is none (the daemon's documented one-time setup). */
  createForRoot?: boolean;
  /** Told each line appended, so the operator sees the change to the host. */
  onCreate?(line: string, path: string): void;
}

/**
 * The current user's ranges. For root without one, appends `root:<start>:<ROOT_RANGE_COUNT>`
 * to both files (when allowed), starting above every existing range; for other users, says which
 * command an administrator runs.
 */
export async function subordinateRanges(
  options: SubordinateOptions = {},
): Promise<{ ok: true; ranges: SubordinateRanges } | { ok: false; reason: string }> {
  const subuidPath = options.subuidPath ?? "/etc/subuid";
  const subgidPath = options.subgidPath ?? "/etc/subgid";
  const { username, uid } = userInfo();
  const user = { name: username, uid };
  const uidEntries = await readEntries(subuidPath);
  const gidEntries = await readEntries(subgidPath);
  let uidRange = findRange(uidEntries, user);
  let gidRange = findRange(gidEntries, user);
  if ((uidRange === undefined || gidRange === undefined) && uid === 0 && options.createForRoot) {
    if (uidRange === undefined) {
      uidRange = { start: freeRangeStart(uidEntries), count: ROOT_RANGE_COUNT };
      const line = `${username}:${uidRange.start}:${uidRange.count}`;
      await appendLine(subuidPath, line);
      options.onCreate?.(line, subuidPath);
    }
    if (gidRange === undefined) {
      gidRange = { start: freeRangeStart(gidEntries), count: ROOT_RANGE_COUNT };
      const line = `${username}:${gidRange.start}:${gidRange.count}`;
      await appendLine(subgidPath, line);
      options.onCreate?.(line, subgidPath);
    }
  }
  if (uidRange === undefined || gidRange === undefined) {
    const first = freeRangeStart([...uidEntries, ...gidEntries]);
    return {
      ok: false,
      reason:
        `user ${username} has no subordinate id range of ${SANDBOX_ID_COUNT} in ${subuidPath} and ` +
        `${subgidPath}; add one: usermod --add-subuids ${first}-${first + SANDBOX_ID_COUNT - 1} ` +
        `--add-subgids ${first}-${first + SANDBOX_ID_COUNT - 1} ${username}`,
    };
  }
  return { ok: true, ranges: { uid: uidRange, gid: gidRange } };
}

async function appendLine(path: string, line: string): Promise<void> {
  let prefix = "";
  try {
    const text = await readFile(path, "utf8");
    if (text.length > 0 && !text.endsWith("\n")) prefix = "\n";
  } catch {
    // A missing file is created by appendFile.
  }
  await appendFile(path, `${prefix}${line}\n`, { mode: 0o644 });
}

/**
 * Splits ranges into per-sandbox slices so concurrent builds run as different host ids; with
 * fewer slices than builds, slices are reused (still isolated by their own namespaces).
 */
export function sandboxSlice(ranges: SubordinateRanges, slot: number): SubordinateRanges {
  const slices = Math.max(
    1,
    Math.min(
      Math.floor(ranges.uid.count / SANDBOX_ID_COUNT),
      Math.floor(ranges.gid.count / SANDBOX_ID_COUNT),
    ),
  );
  const index = slot % slices;
  return {
    uid: { start: ranges.uid.start + index * SANDBOX_ID_COUNT, count: SANDBOX_ID_COUNT },
    gid: { start: ranges.gid.start + index * SANDBOX_ID_COUNT, count: SANDBOX_ID_COUNT },
  };
}
