/**
 * The dependency rule of src/ (`npm run check:deps`, part of `npm run check` and CI): no import cycle,
 * and every import points down this list of layers (a layer may import itself and any layer below it,
 * never one above). See "Layout" in the README.
 */
const LAYERS = [
  ['entry', '^src/(main\\.ts|demo/)'],
  ['server', '^src/server/'],
  ['composition', '^src/(gateway|app)\\.ts$'],
  ['http', '^src/http/'],
  ['completion', '^src/services/completion/'],
  ['keys', '^src/services/keys/'],
  ['limits', '^src/services/limits/'],
  ['usage', '^src/services/usage/'],
  ['cache', '^src/services/cache/'],
  ['continuation', '^src/services/continuation/'],
  ['selector', '^src/services/selector/'],
  ['endpoints', '^src/services/endpoints/'],
  ['forwarder', '^src/services/forwarder/'],
  ['providers', '^src/services/providers/'],
  ['streaming', '^src/services/streaming/'],
  ['core', '^src/services/core/'],
  ['stores', '^src/stores/'],
  ['observability', '^src/observability/'],
  ['config', '^src/config/'],
  ['errors', '^src/errors/'],
];

const below = (i) => LAYERS.slice(i).map(([, path]) => path);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Layers only point down; a cycle means two modules are one concept or one is misplaced.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'not-in-a-layer',
      severity: 'error',
      comment: 'Every source file belongs to a layer of .dependency-cruiser.cjs.',
      from: { path: '^src/', pathNot: LAYERS.map(([, path]) => path) },
      to: { path: '^src/' },
    },
  ],
  allowed: [
    // Node's own modules and packages from node_modules are fine anywhere.
    { from: { path: '^src/' }, to: { dependencyTypesNot: ['local', 'aliased'] } },
    ...LAYERS.map(([, path], i) => ({ from: { path }, to: { path: below(i) } })),
  ],
  allowedSeverity: 'error',
  options: {
    includeOnly: '^src/',
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: they tie the layers together as much as value imports do.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
