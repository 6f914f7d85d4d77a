// Minimal Reflect metadata API (the three functions tsyringe calls), installed only when no
// polyfill (reflect-metadata, core-js, ...) is present. tsyringe uses it for its @injectable
// bookkeeping inside @peculiar/x509; weft itself uses no decorators.
type Key = unknown;
type MetadataReflect = typeof Reflect & {
  getMetadata?: (key: Key, target: object, property?: PropertyKey) => unknown;
  getOwnMetadata?: (key: Key, target: object, property?: PropertyKey) => unknown;
  defineMetadata?: (key: Key, value: unknown, target: object, property?: PropertyKey) => void;
};

const reflect = Reflect as MetadataReflect;

if (typeof reflect.getMetadata !== "function") {
  const store = new WeakMap<object, Map<PropertyKey | undefined, Map<Key, unknown>>>();
  const own = (target: object, property: PropertyKey | undefined, create: boolean) => {
    let byProperty = store.get(target);
    if (!byProperty) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let entries = byProperty.get(property);
    if (!entries && create) {
      entries = new Map();
      byProperty.set(property, entries);
    }
    return entries;
  };
  const getOwnMetadata = (key: Key, target: object, property?: PropertyKey) => own(target, property, false)?.get(key);
  const getMetadata = (key: Key, target: object, property?: PropertyKey): unknown => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const entries = own(t, property, false);
      if (entries?.has(key)) return entries.get(key);
    }
    return undefined;
  };
  const defineMetadata = (key: Key, value: unknown, target: object, property?: PropertyKey) => {
    own(target, property, true)!.set(key, value);
  };
  for (const [name, fn] of Object.entries({ getMetadata, getOwnMetadata, defineMetadata })) {
    Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true });
  }
}

export {};
