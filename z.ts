import { createBodySchema } from './src/agents/sinks.js';
console.log(createBodySchema.optional().safeParse(undefined));
console.log(createBodySchema.optional().safeParse(null).error?.issues);
