"""Provider wrappers: the only code that talks to Twilio and FCM."""
