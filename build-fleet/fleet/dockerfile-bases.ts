// Which images a Dockerfile builds on: its FROM lines and `COPY --from=<image>`, with global ARG
// defaults substituted, minus stage names and `scratch`. The fleet fetches these before the build
// (the sandbox has no network), so it reads the Dockerfile the way the builder will.

export interface DockerfileBases {
  /** Image references in order of first use, as written after ARG substitution. */
  images: string[];
}

/** Logical lines: continuations joined, comments and empty lines dropped, directives honoured. */
export function dockerfileInstructions(text: string): { keyword: string; args: string }[] {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let escapeChar = "\\";
  // Parser directives (`# escape=`) may only open the file.
  for (const line of lines) {
    const directive = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(line);
    if (directive === null) break;
    if (
      directive[1]?.toLowerCase() === "escape" &&
      (directive[2] === "`" || directive[2] === "\\")
    ) {
      escapeChar = directive[2];
    }
  }
  const instructions: { keyword: string; args: string }[] = [];
  let current = "";
  for (const raw of lines) {
    const trimmedStart = raw.trimStart();
    // A comment line inside a continuation is skipped, as the builder does.
    if (trimmedStart.startsWith("#")) continue;
    const trimmedEnd = raw.trimEnd();
    if (trimmedEnd.endsWith(escapeChar)) {
      current += `${trimmedEnd.slice(0, -1)} `;
      continue;
    }
    current += raw;
    const logical = current.trim();
    current = "";
    if (logical === "") continue;
    const space = logical.search(/\s/);
    const keyword = (space < 0 ? logical : logical.slice(0, space)).toUpperCase();
    const args = space < 0 ? "" : logical.slice(space).trim();
    instructions.push({ keyword, args });
  }
  if (current.trim() !== "") {
    const logical = current.trim();
    const space = logical.search(/\s/);
    instructions.push({
      keyword: (space < 0 ? logical : logical.slice(0, space)).toUpperCase(),
      args: space < 0 ? "" : logical.slice(space).trim(),
    });
  }
  return instructions;
}

/**
 * `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}`, as the builder expands a
 * FROM line with the global ARGs. An unknown name expands to nothing.
 */
export function expandArgs(value: string, args: ReadonlyMap<string, string>): string {
  return value.replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (
      _match,
      braced: string | undefined,
      operator: string | undefined,
      word: string | undefined,
      bare: string | undefined,
    ) => {
      const name = braced ?? bare ?? "";
      const set = args.get(name);
      if (operator === "-") return set === undefined || set === "" ? (word ?? "") : set;
      if (operator === "+") return set === undefined || set === "" ? "" : (word ?? "");
      return set ?? "";
    },
  );
}

function unquote(value: string): string {
  if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) {
    return value.slice(1, -1);
  }
  return value;
}

export function dockerfileBases(text: string): DockerfileBases {
  const instructions = dockerfileInstructions(text);
  const globalArgs = new Map<string, string>();
  const stages = new Set<string>();
  const images: string[] = [];
  const addImage = (reference: string) => {
    if (reference.toLowerCase() === "scratch" || stages.has(reference.toLowerCase())) return;
    if (!images.includes(reference)) images.push(reference);
  };
  let seenFrom = false;
  let stageCount = 0;
  for (const { keyword, args } of instructions) {
    if (keyword === "ARG" && !seenFrom) {
      // Only ARGs before the first FROM are in scope for FROM lines.
      for (const declaration of args.split(/\s+/).filter(Boolean)) {
        const equals = declaration.indexOf("=");
        if (equals < 0) globalArgs.set(declaration, globalArgs.get(declaration) ?? "");
        else globalArgs.set(declaration.slice(0, equals), unquote(declaration.slice(equals + 1)));
      }
      continue;
    }
    if (keyword === "FROM") {
      seenFrom = true;
      const words = args.split(/\s+/).filter((word) => !word.startsWith("--"));
      const image = expandArgs(words[0] ?? "", globalArgs);
      if (image !== "") addImage(image);
      // `FROM image AS name`: later FROM and COPY --from may name the stage instead of an image.
      if (words[1]?.toUpperCase() === "AS" && words[2] !== undefined)
        stages.add(words[2].toLowerCase());
      stages.add(String(stageCount));
      stageCount++;
      continue;
    }
    if (keyword === "COPY") {
      for (const flag of args.split(/\s+/)) {
        if (!flag.startsWith("--from=")) continue;
        const source = unquote(flag.slice("--from=".length));
        if (source !== "") addImage(source);
      }
    }
  }
  return { images };
}
