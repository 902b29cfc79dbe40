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
 * A 200 that is JSON, or Server-Sent Events when the request set `stream: true`. For an event stream OpenAPI
 * 3.1 describes one event: its `data` is a chunk as JSON, or `[DONE]` last.
 */
export function jsonOrEventStream(json: TSchema, chunk: TSchema = json) {
  return {
    description: 'The result as JSON, or `data:` events ending in `data: [DONE]` when stream is true',
    content: {
      'application/json': { schema: json },
      'text/event-stream': {
        schema: Type.Object(
          {
            data: Type.Union([
              Type.Literal('[DONE]'),
              Type.String({ contentMediaType: 'application/json', contentSchema: chunk }),
            ]),
          },
          { description: 'One Server-Sent Event: a chunk as JSON, or [DONE] last' },
        ),
      },
    },
  };
}
