/** Failure reasons as grouped: one cause is one group, whichever image it struck. */

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Replaces the image's name, path, output prefix and id in a reason with <image>. */
export function normaliseReason(reason: string, image: { name?: string; input?: string; outPrefix?: string; imageId?: string }): string {
  const names = [image.input, image.outPrefix, image.name, image.name?.split(/[/\\]/).pop(), image.imageId]
    .filter((n): n is string => typeof n === "string" && n.length >= 3)
    .sort((a, b) => b.length - a.length);
  if (names.length === 0) return reason;
  return reason.replace(new RegExp([...new Set(names)].map(escapeRe).join("|"), "g"), "<image>");
}
