// Stock per product. Only the frontend may ask (access-policy.yaml).
import { serve } from "./mesh.ts";

const stock: Record<string, number> = { tea: 120, mug: 14, kettle: 0 };

serve("inventory", async (req) => {
  const m = /^\/stock\/([a-z]+)$/.exec(req.url ?? "");
  if (!m || !(m[1]! in stock)) return { status: 404, body: { error: `no ${req.url}; try /stock/tea` } };
  const caller = (req.headers["x-forwarded-client-cert"] as string | undefined)?.match(/URI=([^;,]+)/)?.[1] ?? null;
  return { body: { id: m[1], count: stock[m[1]!], caller } };
});
