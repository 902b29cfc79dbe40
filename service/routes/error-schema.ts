import { Type } from '@sinclair/typebox';

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
