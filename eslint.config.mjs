// Lint rules for a daemon: no floating promises, no import cycles, type-only
// imports, no console (services log through the logger), and module
// boundaries: no project imports an app; apps are composition roots only.
import js from '@eslint/js';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

const appPackages = ['@berth/cri', '@berth/image', '@berth/store', '@berth/executor', '@berth/berthd', '@berth/berthctl'];

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/node_modules/**', 'libs/proto/src/gen/**', 'libs/db/src/generated/**', 'tmp/**', '.nx/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: true } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
      'import-x/no-self-import': 'error',
      'no-console': 'error',
      'no-restricted-imports': [
        'error',
        {
          paths: appPackages.map((name) => ({ name, message: 'apps are composition roots: never import one; move shared code into a lib' })),
          patterns: [{ group: ['../../apps/*', '../../../apps/*', '**/apps/*/src/*'], message: 'never import from an app' }, { group: ['@berth/*/src/*', '@berth/*/dist/*'], message: 'import a lib by its package name only (its src/index.ts)' }],
        },
      ],
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', URL: 'readonly', console: 'readonly' } },
  },
  {
    files: ['**/*.test.ts', 'e2e/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
