// Why garbage collection keeps a manifest, through repository-subroutes.ts:
//   GET /repositories/<name>/manifests/<digest>/retention
//       → {digest, kept, keptBy: {tags, parents, subject, historyUntil, pushGraceUntil},
//          collectableAt}
// Pull access reads it (404 for who cannot see the repository, or an unknown manifest).
import { manifestRetention } from "../services/manifest-retention.ts";
import { type ApiContext, identityContext, repositoryParam } from "./context.ts";
import { digestOf } from "./lifecycle-input.ts";
import type { RepositorySubroute } from "./repository-subroutes.ts";

const RETENTION = /^(.+)\/manifests\/([^/]+)\/retention$/;

export const manifestRetentionSubroutes: RepositorySubroute[] = [
  { method: "GET", pattern: RETENTION, handle: (c, m) => retention(c, m[1]!, m[2]!) },
];

async function retention(c: ApiContext, repository: string, digest: string): Promise<Response> {
  const view = await manifestRetention(
    identityContext(c),
    c.var.services.objects,
    repositoryParam(repository),
    digestOf({ digest }),
  );
  return c.json(view);
}
