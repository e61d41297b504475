// The build fleet, for superusers:
//   POST   /fleet/credentials       {name} → 201 {id, name, createdAt, credential} (shown once)
//   GET    /fleet/credentials       ?limit=&cursor= → {credentials, next_cursor}, newest first
//   DELETE /fleet/credentials/:id   revoke, and disconnect the hosts using it → the credential
//   GET    /fleet/hosts             the connected hosts, their load, and the pending job count
import { Hono } from "hono";
import { buildObjects } from "../services/builds.ts";
import {
  createFleetCredential,
  listFleetCredentials,
  revokeFleetCredential,
} from "../services/builds-fleet-credentials.ts";
import { forbidden } from "../services/identity/errors.ts";
import { checkLabel } from "../services/identity/names.ts";
import {
  type ApiEnv,
  identityContext,
  pageBody,
  pageOf,
  readBody,
  requiredString,
} from "./context.ts";

export const fleetCredentialsApi = new Hono<ApiEnv>();

fleetCredentialsApi.post("/fleet/credentials", async (c) => {
  const body = await readBody(c, ["name"]);
  const name = checkLabel("name", requiredString(body, "name"), 100);
  const credential = await createFleetCredential(identityContext(c), name);
  // The secret must not linger in any cache between here and the client.
  return c.json(credential, 201, { "Cache-Control": "no-store" });
});

fleetCredentialsApi.get("/fleet/credentials", async (c) =>
  c.json(pageBody("credentials", await listFleetCredentials(identityContext(c), pageOf(c, 2)))),
);

fleetCredentialsApi.delete("/fleet/credentials/:id", async (c) => {
  const coordinator = buildObjects(c.env).coordinator();
  const credential = await revokeFleetCredential(identityContext(c), c.req.param("id"), (id) =>
    coordinator.disconnectCredential(id),
  );
  return c.json(credential);
});

fleetCredentialsApi.get("/fleet/hosts", async (c) => {
  if (!c.var.caller.superuser) throw forbidden("only superusers may see the build fleet");
  const status = await buildObjects(c.env).coordinator().status();
  return c.json({
    hosts: status.hosts.map((host) => ({
      ...host,
      connectedAt: new Date(host.connectedAt).toISOString(),
      lastSeen: new Date(host.lastSeen).toISOString(),
    })),
    pending: status.pending,
    running: status.running,
  });
});
