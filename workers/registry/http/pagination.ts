// RFC 8288 Link header for the next page of a list (distribution-spec §"Listing Tags").

export function nextLink(path: string, n: number, last: string): string {
  const query = new URLSearchParams({ n: String(n), last });
  return `<${path}?${query}>; rel="next"`;
}
