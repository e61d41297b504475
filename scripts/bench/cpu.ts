// CPU accounting from /proc (Linux): how much CPU a registry's processes burn per request, and
// how much of the machine something else took while a measurement ran. On a 2-core box the
// request rate is bounded by CPU, so CPU per request compares two servers even when the rates
// are close, and a busy neighbour (another test run) shows up instead of silently skewing.

import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture Node supports

/** utime + stime of one process, in seconds (0 if it is gone). */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After "(comm) ", fields start at #3 (state): utime is #14, stime #15.
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** This process plus its children that have exited (wrk, curl, skopeo), in seconds. */
export function selfAndReapedChildrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (
    (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) /
    TICKS_PER_SECOND
  );
}

/** Busy CPU time of the whole machine (all cores), in seconds. */
export function machineBusySeconds(): number {
  const first = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const [, ...values] = first.trim().split(/\s+/);
  const n = values.map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const busy = n[0]! + n[1]! + n[2]! + n[5]! + n[6]! + n[7]!;
  return busy / TICKS_PER_SECOND;
}

export interface CpuSnapshot {
  at: number;
  perPid: Map<number, number>;
  self: number;
  machine: number;
}

export function snapshot(pids: number[]): CpuSnapshot {
  return {
    at: performance.now(),
    perPid: new Map(pids.map((pid) => [pid, processCpuSeconds(pid)])),
    self: selfAndReapedChildrenCpuSeconds(),
    machine: machineBusySeconds(),
  };
}

export interface CpuUsage {
  wallSeconds: number;
  /** CPU seconds of each watched process over the interval. */
  perPid: Record<number, number>;
  /** The bench process and its reaped children (the load generator). */
  benchSeconds: number;
  /** Busy CPU seconds of the machine not explained by the watched processes or the bench. */
  otherSeconds: number;
}

export function usageBetween(before: CpuSnapshot, after: CpuSnapshot): CpuUsage {
  const perPid: Record<number, number> = {};
  let watched = 0;
  for (const [pid, start] of before.perPid) {
    const used = Math.max(0, (after.perPid.get(pid) ?? start) - start);
    perPid[pid] = used;
    watched += used;
  }
  const benchSeconds = after.self - before.self;
  return {
    wallSeconds: (after.at - before.at) / 1000,
    perPid,
    benchSeconds,
    otherSeconds: Math.max(0, after.machine - before.machine - watched - benchSeconds),
  };
}
