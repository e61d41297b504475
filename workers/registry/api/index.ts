// The management API (`/api/v1`, mounted by app.ts): JSON in and out, people authenticated by app
// token or Basic, errors as `{ "error": { "code", "message" } }`. Private names do not leak: what
// the caller cannot see is 404, what they can see but not change is 403.
import { Hono } from "hono";
import type { AppEnv } from "../env.ts";
import { IdentityError } from "../services/identity/errors.ts";
import { auditLogsApi } from "./audit-logs.ts";
import { requireCaller } from "./authentication.ts";
import { type ApiEnv, renderError } from "./context.ts";
import { defaultPermissionsApi } from "./default-permissions.ts";
import { fleetCredentialsApi } from "./fleet-credentials.ts";
import { namespacePoliciesApi } from "./namespace-policies.ts";
import { organizationsApi } from "./organizations.ts";
import { quotasApi } from "./quotas.ts";
import { repositoriesApi } from "./repositories.ts";
import { robotsApi } from "./robots.ts";
import { teamsApi } from "./teams.ts";
import { tokensApi } from "./tokens.ts";
import { usersApi } from "./users.ts";

const api = new Hono<ApiEnv>();

api.use("*", requireCaller);
api.route("/", usersApi);
api.route("/", tokensApi);
api.route("/", organizationsApi);
api.route("/", teamsApi);
api.route("/", defaultPermissionsApi);
api.route("/", robotsApi);
api.route("/", quotasApi);
api.route("/", namespacePoliciesApi);
api.route("/", fleetCredentialsApi);
api.route("/", repositoriesApi);
// GET /logs (audit-logs.ts). Its `/repositories/:name/pulls` is answered by repositoriesApi.
api.route("/", auditLogsApi);

api.all("*", (c) => {
  throw new IdentityError(
    "NOT_FOUND",
    `no endpoint ${c.req.method} ${new URL(c.req.url).pathname}`,
  );
});

api.onError((error, c) => {
  if (error instanceof IdentityError) return renderError(error);
  // Internals never leak into the response; the log has them.
  console.error(`${c.req.method} ${new URL(c.req.url).pathname} failed`, error);
  return renderError(new IdentityError("INTERNAL", "internal error"));
});

/** Mounted by app.ts with `app.route("/api/v1", managementApi)`. */
export const managementApi: Hono<AppEnv> = new Hono<AppEnv>().route("/", api);
