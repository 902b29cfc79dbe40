import { type TSchema, Type } from '@sinclair/typebox';

/** The OpenAI error body every failure is returned in (see service/errors.ts). */
export const ErrorResponseSchema = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String(),
      param: Type.Union([Type.String(), Type.Null()]),
      code: Type.Union([Type.String(), Type.Null()]),
    }),
  },
  { $id: 'ErrorResponse' },
);

/**
 * A 200 that is JSON, or Server-Sent Events when the request set `stream: true`; documented as both so that
 * OpenAPI clients and schemathesis know a stream is a valid answer.
 */
export function jsonOrEventStream(json: TSchema) {
  return {
    description: 'The result as JSON, or `data:` events ending in `data: [DONE]` when stream is true',
    content: {
      'application/json': { schema: json },
      'text/event-stream': {
        schema: Type.String({ description: 'data: <chunk JSON> lines, then data: [DONE]' }),
      },
    },
  };
}
