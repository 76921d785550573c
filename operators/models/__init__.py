"""The encoders and the models they load: frames, sounds, speech, text, CLIP, the vlm captioner."""
