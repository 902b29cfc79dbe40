import type { ChatMessage } from '../../service/engine/chat-template.js';

/** Raw completion prompts: English, Chinese, emoji, mixed scripts, whitespace and punctuation edge cases. */
export const RAW_PROMPTS = [
  'In the beginning God created',
  'And the earth was without form, and void;',
  'And God said, Let there be light:',
  'The LORD is my shepherd;',
  'Blessed are the meek: for they',
  'For God so loved the world,',
  '床前明月光，',
  '白日依山尽，',
  '春眠不觉晓，',
  '国破山河在，城春草木深。',
  'Light 🌅 and darkness 🌑',
  '🙂🙃 emoji first, then words',
  '混合 text 和中文 together',
  '  leading spaces and\ttabs',
  'numbers 3.14159 and 42',
  'ÀÉÎÕÜ ñ ç ß',
];

export const CHAT_PROMPTS: ChatMessage[][] = [
  [{ role: 'user', content: 'Continue: In the beginning' }],
  [{ role: 'user', content: 'Continue: 床前明月光' }],
  [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Who made the heaven and the earth? 🌍' },
  ],
  [
    { role: 'user', content: 'Say something.' },
    { role: 'assistant', content: 'And there was light.' },
    { role: 'user', content: '再说一遍' },
  ],
];
