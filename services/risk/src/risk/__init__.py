"""The risk service: assesses every order against configurable rules, holds serious
cases, queues exceptions for operators, keeps the blacklist."""
