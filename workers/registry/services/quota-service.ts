// Quota enforcement on the push path: one NamespaceObject call when an upload starts and one when
// a manifest is pushed, before anything is stored; a refusal is the spec's DENIED (403) naming
// usage and limit, and is announced as `quota.exceeded`. Pulls never come here.
//
// Usage counts the blobs that kept manifests reference, not bytes in flight: an upload is not
// counted until a manifest references its blob. So the exact check is the manifest push (which
// knows the blobs it adds); at upload start the namespace is only asked whether any room is left
// (or, when the blob and its size are known, whether it fits). An upload is therefore never
// refused for bytes that may never be kept, and unreferenced uploads cost no accounting at all
// (they expire, or garbage collection removes them). Two pushes in flight at once are each
// checked against the usage before the other: the limit can be overshot by at most what
// concurrent pushes add, which the next push then sees.
import { RegistryError } from "../../../schema/oci/errors.ts";
import type { Digest, RepositoryName } from "../../../schema/oci/reference.ts";
import type { QuotaAdmission } from "../../../schema/rpc.ts";
import { namespaceOf } from "../auth/access.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import { emitFor, type RequestContext } from "./request-context.ts";

export class QuotaService {
  constructor(private readonly deps: { objects: ObjectDirectory; ctx: RequestContext }) {}

  /**
   * Before an upload session starts: `blob` is what a monolithic push or a mount adds (size null
   * when the request does not declare it), null for a plain session.
   */
  async admitUpload(
    name: RepositoryName,
    blob: { digest: Digest; size: number | null } | null,
  ): Promise<void> {
    const admission = await this.deps.objects.namespaceOf(name).admitUpload(blob);
    if (!admission.admitted) this.refuse(name, admission, blob ? "this blob" : "a new upload");
  }

  /** Before a manifest is stored: the blobs it lists that the namespace does not count yet. */
  async admitManifest(
    name: RepositoryName,
    blobs: readonly { digest: Digest; size: number }[],
  ): Promise<void> {
    // An index or a manifest without blobs adds no bytes: no call.
    if (blobs.length === 0) return;
    const admission = await this.deps.objects
      .namespaceOf(name)
      .admitManifest(blobs.map(({ digest, size }) => ({ digest, size })));
    if (!admission.admitted) this.refuse(name, admission, "this manifest");
  }

  private refuse(
    name: RepositoryName,
    admission: Extract<QuotaAdmission, { admitted: false }>,
    what: string,
  ): never {
    const namespace = namespaceOf(name);
    const { usageBytes, limitBytes, newBytes } = admission;
    emitFor(this.deps.ctx, {
      kind: "quota.exceeded",
      namespace,
      repository: name,
      metadata: { usageBytes, limitBytes, newBytes },
    });
    const adds = newBytes > 0 ? `; ${what} would add ${newBytes} bytes` : "";
    throw new RegistryError(
      "DENIED",
      `storage quota of namespace ${namespace || "(root)"} exceeded: ${usageBytes} of ${limitBytes} bytes used${adds}`,
      { detail: { namespace, usageBytes, limitBytes, newBytes } },
    );
  }
}
