// Users: POST /users (superusers create accounts, each with its namespace), GET /user (who am I,
// my organizations), PATCH /user (change my password or email; the current password is required).
import { Hono } from "hono";
import { conflict, invalid } from "../services/identity/errors.ts";
import { checkEmail, checkName, checkPassword } from "../services/identity/names.ts";
import { createUser, describeMe, updateMe } from "../services/identity/users.ts";
import {
  type ApiEnv,
  identityContext,
  optionalBoolean,
  optionalString,
  readBody,
  requiredString,
} from "./context.ts";

export const usersApi = new Hono<ApiEnv>();

usersApi.post("/users", async (c) => {
  const body = await readBody(c, ["username", "email", "password", "superuser"]);
  const email = optionalString(body, "email");
  const superuser = optionalBoolean(body, "superuser");
  const user = await createUser(identityContext(c), {
    username: checkName("username", requiredString(body, "username")),
    password: checkPassword(requiredString(body, "password")),
    ...(email !== undefined ? { email: checkEmail(email) } : {}),
    ...(superuser !== undefined ? { superuser } : {}),
  });
  return c.json(user, 201);
});

usersApi.get("/user", async (c) => c.json(await describeMe(identityContext(c))));

usersApi.patch("/user", async (c) => {
  const body = await readBody(c, ["currentPassword", "newPassword", "email"]);
  const newPassword = optionalString(body, "newPassword");
  const email = body.email === null ? null : optionalString(body, "email");
  if (newPassword === undefined && email === undefined) {
    throw invalid("nothing to change: send newPassword and/or email");
  }
  // ensureBootstrapAdmin resets this account's password to the configured one on every new
  // isolate: a change made here would silently come undone.
  if (newPassword !== undefined && c.var.caller.name === c.env.REGISTRY_ADMIN_USER) {
    throw conflict(
      `the password of ${c.env.REGISTRY_ADMIN_USER} is set by REGISTRY_ADMIN_PASSWORD: change it there`,
    );
  }
  const user = await updateMe(identityContext(c), {
    currentPassword: requiredString(body, "currentPassword"),
    ...(newPassword !== undefined ? { newPassword: checkPassword(newPassword) } : {}),
    ...(email !== undefined ? { email: email === null ? null : checkEmail(email) } : {}),
  });
  return c.json(user);
});
