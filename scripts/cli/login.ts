// Logging in and out: a username and password (asked on the terminal, or read from stdin) buy an
// app token through POST /api/v1/user/tokens, and the URL and token are stored for the next runs.

import { ApiClient } from "./client.ts";
import { normalizeUrl, readConfig, removeConfig, writeConfig } from "./config.ts";
import type { Command, CommandContext } from "./context.ts";
import { CliError, UsageError } from "./errors.ts";
import { details, formatTime } from "./output.ts";

interface Me {
  username: string;
  email: string | null;
  superuser: boolean;
  createdAt: string;
  authenticatedWith?: string;
  organizations?: { name: string; role: string }[];
}

interface CreatedToken {
  id: string;
  name: string;
  token: string;
  expiresAt: string | null;
}

/** A password from stdin (`--password-stdin`) or typed on the terminal without echo. */
export async function readPassword(ctx: CommandContext, question: string): Promise<string> {
  if (ctx.flag("password-stdin")) {
    const text = (await ctx.io.readStdin()).replace(/\r?\n$/, "");
    if (text === "") throw new UsageError("--password-stdin: standard input was empty");
    return text;
  }
  if (!ctx.io.prompt)
    throw new UsageError("no terminal to ask for a password on: pass --password-stdin");
  const answer = await ctx.io.prompt(question, { secret: true });
  if (answer === "") throw new UsageError("the password is empty");
  return answer;
}

/** A new password: from stdin, or typed twice on the terminal. */
export async function readNewPassword(ctx: CommandContext, question: string): Promise<string> {
  const password = await readPassword(ctx, question);
  if (!ctx.flag("password-stdin") && ctx.io.prompt) {
    const again = await ctx.io.prompt("Repeat it: ", { secret: true });
    if (again !== password) throw new UsageError("the passwords differ");
  }
  return password;
}

export const loginCommand: Command = {
  path: ["login"],
  args: ["url"],
  summary: "log in to a registry: creates an app token and stores it in your config",
  options: {
    username: {
      type: "string",
      short: "u",
      value: "user",
      description: "your username (asked if omitted)",
    },
    "password-stdin": { type: "boolean", description: "read the password from standard input" },
    "token-stdin": {
      type: "boolean",
      description: "store an existing app token read from standard input",
    },
    "token-name": {
      type: "string",
      value: "name",
      description: "name of the new app token (default cli@<host>)",
    },
    "expires-in-days": { type: "string", value: "days", description: "let the new token expire" },
  },
  async run(ctx) {
    const url = normalizeUrl(ctx.arg("url"));
    let token: string;
    let tokenId: string | undefined;
    if (ctx.flag("token-stdin")) {
      token = (await ctx.io.readStdin()).trim();
      if (token === "") throw new UsageError("--token-stdin: standard input was empty");
    } else {
      let username = ctx.option("username");
      if (username === undefined) {
        if (!ctx.io.prompt)
          throw new UsageError("no terminal to ask on: pass --username and --password-stdin");
        username = (await ctx.io.prompt("Username: ", { secret: false })).trim();
      }
      if (username === "") throw new UsageError("the username is empty");
      const password = await readPassword(ctx, `Password for ${username}: `);
      const rawDays = ctx.option("expires-in-days");
      if (rawDays !== undefined && !/^[1-9]\d*$/.test(rawDays)) {
        throw new UsageError("--expires-in-days must be a positive integer");
      }
      const basic = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
      const created = await new ApiClient(url, undefined, ctx.io.fetch).post<CreatedToken>(
        "/user/tokens",
        {
          name: ctx.option("token-name") ?? `cli@${ctx.io.hostname}`.slice(0, 100),
          ...(rawDays !== undefined ? { expiresInDays: Number(rawDays) } : {}),
        },
        { authorization: basic },
      );
      if (typeof created?.token !== "string") throw new CliError(`${url} did not return a token`);
      token = created.token;
      tokenId = created.id;
    }
    // Proves the token works (and learns the canonical username) before anything is saved.
    const me = await new ApiClient(url, token, ctx.io.fetch).get<Me>("/user");
    await writeConfig(ctx.configFile, {
      url,
      token,
      username: me.username,
      ...(tokenId ? { tokenId } : {}),
    });
    ctx.print(
      { url, username: me.username, tokenId: tokenId ?? null, config: ctx.configFile },
      (r) =>
        `logged in to ${r.url} as ${r.username}${me.superuser ? " (superuser)" : ""}\ncredentials saved in ${r.config}`,
    );
  },
};

export const logoutCommand: Command = {
  path: ["logout"],
  args: [],
  summary: "revoke the stored app token and forget it",
  async run(ctx) {
    const stored = await readConfig(ctx.configFile);
    if (!stored) {
      ctx.print({ ok: true, loggedIn: false }, () => "not logged in");
      return;
    }
    let revoked = false;
    if (stored.tokenId) {
      try {
        await new ApiClient(stored.url, stored.token, ctx.io.fetch).delete(
          `/user/tokens/${encodeURIComponent(stored.tokenId)}`,
        );
        revoked = true;
      } catch (error) {
        // Forget it anyway: a token that no longer works (or a registry that is gone) must not
        // keep the user logged in. Say so, so they can revoke it from elsewhere.
        ctx.io.stderr(`warning: the token was not revoked: ${(error as Error).message}`);
      }
    }
    await removeConfig(ctx.configFile);
    ctx.print(
      { ok: true, revoked },
      () => `logged out of ${stored.url}${revoked ? " (token revoked)" : ""}`,
    );
  },
};

export const whoamiCommand: Command = {
  path: ["whoami"],
  args: [],
  summary: "show who you are logged in as",
  async run(ctx) {
    const client = await ctx.client();
    const me = await client.get<Me>("/user");
    ctx.print(me, (m) =>
      details([
        ["registry", client.baseUrl],
        ["username", m.username],
        ["email", m.email],
        ["superuser", m.superuser ? "yes" : "no"],
        ["created", formatTime(m.createdAt)],
        ["organizations", (m.organizations ?? []).map((o) => `${o.name} (${o.role})`)],
      ]),
    );
  },
};
