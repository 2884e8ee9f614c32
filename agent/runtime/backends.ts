/** What a model's segments can run on; the config adds `auto` (the runtime picks). */
export const BACKENDS = ['xnnpack', 'stock', 'edgetpu'] as const;
export type Backend = (typeof BACKENDS)[number];
