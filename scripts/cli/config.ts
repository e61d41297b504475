// Where the CLI keeps the registry URL and app token between runs, and the environment that
// overrides them (REGISTRY_URL, REGISTRY_TOKEN) for automation that never logs in.
//
// The file holds a bearer secret, so it is written mode 0600 inside a 0700 folder, and rewritten
// through a temporary file so a crash never leaves half a token behind.
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CliError, EXIT } from "./errors.ts";

export interface StoredConfig {
  url: string;
  token: string;
  /** Who logged in, for `whoami` and messages; informative only. */
  username?: string;
  /** The app token's id, so `logout` can revoke it. */
  tokenId?: string;
}

export type Environment = Record<string, string | undefined>;

/** `$XDG_CONFIG_HOME/edge-registry/config.json`, else `~/.config/edge-registry/config.json`. */
export function configPath(env: Environment, home = os.homedir()): string {
  const base = env.XDG_CONFIG_HOME?.trim() ? env.XDG_CONFIG_HOME : path.join(home, ".config");
  return path.join(base, "edge-registry", "config.json");
}

export async function readConfig(file: string): Promise<StoredConfig | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${file} is not valid JSON; run \`edge-registry login\` again`);
  }
  const config = parsed as Partial<StoredConfig>;
  if (typeof config.url !== "string" || typeof config.token !== "string") {
    throw new CliError(`${file} has no url and token; run \`edge-registry login\` again`);
  }
  return config as StoredConfig;
}

export async function writeConfig(file: string, config: StoredConfig): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // `mode` applies only when the file is created; make sure of it whatever the umask did.
  await chmod(temporary, 0o600);
  await rename(temporary, file);
}

export async function removeConfig(file: string): Promise<boolean> {
  try {
    await rm(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/** The registry URL without a trailing slash; a bare host gets `https://`. */
export function normalizeUrl(input: string): string {
  let text = input.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = `https://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`not a URL: ${input}`, EXIT.usage);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliError(`the registry URL must be http or https: ${input}`, EXIT.usage);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

export interface Credentials {
  url: string;
  token: string;
  username?: string;
}

/**
 * The URL and token to use: REGISTRY_URL and REGISTRY_TOKEN win over the stored login, each on
 * its own (so REGISTRY_TOKEN alone swaps the token for the logged-in registry).
 */
export async function resolveCredentials(env: Environment, file: string): Promise<Credentials> {
  const envUrl = env.REGISTRY_URL?.trim();
  const envToken = env.REGISTRY_TOKEN?.trim();
  const stored = envUrl && envToken ? undefined : await readConfig(file);
  const url = envUrl || stored?.url;
  const token = envToken || stored?.token;
  if (!url || !token) {
    throw new CliError(
      "not logged in: run `edge-registry login <url>`, or set REGISTRY_URL and REGISTRY_TOKEN",
      EXIT.auth,
    );
  }
  const credentials: Credentials = { url: normalizeUrl(url), token };
  if (!envToken && stored?.username) credentials.username = stored.username;
  return credentials;
}
