//! Image folders: `<root>/{train,test}/<class>/*.{jpg,png}`.
