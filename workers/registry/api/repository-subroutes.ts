// The sub-resources of a repository (`/repositories/<name>/<sub…>`). A repository name contains
// slashes, so hono cannot tell `a/b/permissions` (a sub-resource) from `a/b/permissions` (a
// repository) by pattern, and overlapping `:name{.+}` routes would push the whole API onto the
// slower TrieRouter. repositories.ts owns the `:name{.+}` routes and asks this table first; each
// feature exports its own `RepositorySubroute[]` from its own file and is listed once here.
import { pullSubroutes } from "./audit-logs.ts";
import { buildSubroutes } from "./builds.ts";
import type { ApiContext } from "./context.ts";
import { manifestRetentionSubroutes } from "./manifest-retention.ts";
import { manualBuildSubroutes } from "./manual-builds.ts";
import { permissionSubroutes } from "./permissions.ts";
import { tagLifecycleSubroutes } from "./tag-lifecycle.ts";
import { triggerSubroutes } from "./triggers.ts";

export type SubrouteMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RepositorySubroute {
  method: SubrouteMethod;
  /** Matched against the path after `/repositories/`; group 1 is the repository name. */
  pattern: RegExp;
  handle(c: ApiContext, match: RegExpExecArray): Promise<Response>;
}

const SUBROUTES: readonly RepositorySubroute[] = [
  ...permissionSubroutes,
  ...pullSubroutes,
  ...triggerSubroutes,
  ...manualBuildSubroutes,
  ...buildSubroutes,
  ...tagLifecycleSubroutes,
  ...manifestRetentionSubroutes,
];

/** The handler of the sub-resource `path` addresses, or undefined when it names a repository. */
export function findSubroute(
  method: string,
  path: string,
): ((c: ApiContext) => Promise<Response>) | undefined {
  for (const route of SUBROUTES) {
    if (route.method !== method) continue;
    const match = route.pattern.exec(path);
    if (match) return (c) => route.handle(c, match);
  }
  return undefined;
}
