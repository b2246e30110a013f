// Lint for the bugs types do not catch: floating promises and promises where a value is expected.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'console/dist/**', 'clients/typescript/src/schema.ts', 'reports/**', '.seigo/**', '.scratch/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'console/src/**/*.{ts,tsx}', 'clients/typescript/src/**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/await-thenable': 'error',
    },
  },
);
