// Property-based fuzzing of the safetensors reader (test/fuzz/safetensors.ts says what is
// generated and checked). A fixed seed; longer runs: npm run fuzz -- --reader safetensors --runs N.
import t from 'tap';
import { SAFETENSORS_PROPERTIES } from '../fuzz/safetensors.js';
import { tapProperties } from '../fuzz/tap.js';

tapProperties(t, SAFETENSORS_PROPERTIES);
