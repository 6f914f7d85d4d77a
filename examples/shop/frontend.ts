// The shop's front page: the catalog's products with their stock from inventory.
import { call, serve } from "./mesh.ts";

serve("frontend", async (req) => {
  if (req.url !== "/") return { status: 404, body: { error: `no page ${req.url}; try /` } };
  const catalog = await call("http://catalog.shop/products");
  if (catalog.status !== 200) return { status: 502, body: { error: `catalog answered ${catalog.status}`, detail: catalog.body.trim() } };
  const { version, products } = JSON.parse(catalog.body) as { version: string; products: { id: string; name: string; price: number }[] };
  const items = await Promise.all(
    products.map(async (p) => {
      const stock = await call(`http://inventory.shop/stock/${p.id}`);
      return { ...p, inStock: stock.status === 200 ? (JSON.parse(stock.body) as { count: number }).count : null };
    }),
  );
  return {
    body: {
      catalogVersion: version,
      greeting: catalog.headers["x-shop-greeting"] ?? null,
      // Who the catalog saw calling: the frontend's SPIFFE ID, from mTLS between the sidecars.
      catalogSawCaller: JSON.parse(catalog.body).caller,
      products: items,
    },
  };
});
