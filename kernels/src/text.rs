//! Text forms of the workspace's choices (generator, distribution, device, model,
//! optimiser, ...): one name per value, parsed by `FromStr` and written by `Display`,
//! and serialised as that text, so a run's `config.json`, its manifest and its command
//! line all spell a value the same way. Errors name the value and the accepted forms.

#[doc(hidden)]
pub use serde;

/// Writes `one, two or three`.
pub fn either(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Serialises a type through its `Display` and `FromStr` forms.
#[macro_export]
macro_rules! serde_as_text {
    ($t:ty) => {
        impl $crate::text::serde::Serialize for $t {
            fn serialize<S: $crate::text::serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> $crate::text::serde::Deserialize<'de> for $t {
            fn deserialize<D: $crate::text::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let text =
                    <::std::string::String as $crate::text::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err($crate::text::serde::de::Error::custom)
            }
        }
    };
}

/// Declares a plain enum with one text name per variant: `ALL`, `name()`, `Display`,
/// `FromStr` (an error names `$what` and every accepted name) and serde as the text.
#[macro_export]
macro_rules! named_enum {
    ($(#[$m:meta])* $vis:vis $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The text form.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl ::std::str::FromStr for $name {
            type Err = ::std::string::String;
            fn from_str(text: &str) -> ::std::result::Result<Self, ::std::string::String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == text.trim())
                    .ok_or_else(|| {
                        let names: ::std::vec::Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                        format!("unknown {} '{text}' (expected {})", $what, $crate::text::either(&names))
                    })
            }
        }
        $crate::serde_as_text!($name);
    };
}

#[cfg(test)]
mod tests {
    crate::named_enum!(
        /// A test enum.
        pub Fruit, "fruit" {
            /// Red.
            Apple = "apple",
            /// Long.
            Banana = "banana",
            /// Orange.
            Orange = "orange",
        }
    );

    #[test]
    fn names_parse_back_and_errors_list_every_name() {
        for &f in Fruit::ALL {
            assert_eq!(f.to_string().parse::<Fruit>(), Ok(f));
        }
        assert_eq!(
            "kiwi".parse::<Fruit>().unwrap_err(),
            "unknown fruit 'kiwi' (expected apple, banana or orange)"
        );
        assert_eq!(super::either(&["a", "b"]), "a or b");
    }
}
