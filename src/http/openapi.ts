import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { completeResponses, errorJson } from './contract.js';

/**
 * Each route's zod schemas validate its input, serialize its output and make /docs/json
 * (OpenAPI) and /docs: register before the routes.
 */
export function registerOpenApi(app: FastifyInstance): void {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  void app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'flume-service',
        version: '0.1.0',
        description:
          'REST control plane for per-table Apache Flume agents. Errors answer {code, error, message[, details], requestId}; each error status names the codes it carries, all listed in docs/api.md. Any request can be answered 400, 405 (with Allow), 408, 421, 431 or 500 besides what its operation does; every operation declares those too.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } }, schemas: { Error: errorJson as never } },
      security: [{ bearer: [] }],
    },
    // Each operation as its zod schemas say, completed with what every request can be answered.
    transform: (input) => {
      const out = jsonSchemaTransform(input);
      const schema = out.schema as { hide?: boolean; response?: Record<string, Record<string, unknown>> } | undefined;
      if (!schema || schema.hide) return out;
      return { ...out, schema: { ...schema, response: completeResponses(schema.response, input.route) } as never };
    },
    // Schemas with an id (the recursive event contract) as components, referred to by $ref.
    transformObject: jsonSchemaTransformObject,
  });
  void app.register(fastifySwaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
}
