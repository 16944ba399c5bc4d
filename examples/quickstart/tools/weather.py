"""A small, real tool: the forecast for a city, from a fixed table (no network needed)."""

FORECASTS = {
    "paris": {"sky": "light rain", "high_c": 14, "low_c": 8},
    "lisbon": {"sky": "sunny", "high_c": 21, "low_c": 13},
    "oslo": {"sky": "snow showers", "high_c": 1, "low_c": -4},
}


def get_weather(city: str) -> dict[str, object]:
    """Today's forecast for a city (Paris, Lisbon or Oslo)."""
    forecast = FORECASTS.get(city.strip().lower())
    if forecast is None:
        raise ValueError(f"no forecast for {city!r}; known cities: {sorted(FORECASTS)}")
    return {"city": city, **forecast}
