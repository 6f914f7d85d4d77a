// The product catalog, in two versions (VERSION=v1 and v2) for the canary. It also tries to
// read stock itself at /products/ID/stock, which the AccessPolicy on inventory refuses.
import process from "node:process";
import { call, serve } from "./mesh.ts";

const version = process.env.VERSION ?? "v1";
const products = [
  { id: "tea", name: "Green tea", price: version === "v2" ? 3.5 : 4 },
  { id: "mug", name: "Mug", price: 9 },
  { id: "kettle", name: "Kettle", price: 29 },
];

serve(`catalog-${version}`, async (req) => {
  const caller = (req.headers["x-forwarded-client-cert"] as string | undefined)?.match(/URI=([^;,]+)/)?.[1] ?? null;
  if (req.url === "/products") return { body: { version, caller, products } };
  const stock = /^\/products\/([a-z]+)\/stock$/.exec(req.url ?? "");
  if (stock) {
    const reply = await call(`http://inventory.shop/stock/${stock[1]}`);
    return { status: reply.status, body: { askedInventory: reply.status, answer: reply.body.trim() } };
  }
  return { status: 404, body: { error: `no ${req.url}; try /products` } };
});
