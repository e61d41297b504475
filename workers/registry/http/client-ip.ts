// The caller's address as Cloudflare reports it (CF-Connecting-IP), for the audit log.

export function clientIp(request: Request): { clientIp?: string } {
  const ip =
    request.headers.get("CF-Connecting-IP") ??
    request.headers.get("X-Forwarded-For")?.split(",")[0]?.trim();
  return ip ? { clientIp: ip } : {};
}
